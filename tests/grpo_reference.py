"""Plain-torch GRPO loss the slow, obvious way: full [B, T, V] logits, log_softmax, then TRL GRPOTrainer's
formula line by line. The tests and the benchmark ("naive") compare grpo_studio.kernels against it."""
from __future__ import annotations

import torch


def reference_logprobs(hidden, weight, ids, temperature=1.0):
    logits = (hidden @ weight.T).float() / temperature  # [B, T, V]
    return torch.log_softmax(logits, dim=-1).gather(-1, ids.long().unsqueeze(-1)).squeeze(-1)


def reference_grpo_loss(hidden, weight, ids, mask, advantages, *, old_logps=None, ref_logps=None, beta=0.0,
                        epsilon_low=0.2, epsilon_high=0.2, loss_type="dapo", max_completion_length=None,
                        temperature=1.0):
    """Returns (loss, logps, kl, clip_ratio) with autograd through hidden / weight."""
    logps = reference_logprobs(hidden, weight, ids, temperature)
    mask = mask.float()
    adv = advantages.float().unsqueeze(1)
    old = logps.detach() if old_logps is None else old_logps
    coef_1 = torch.exp(logps - old)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    kl = torch.zeros(())
    if ref_logps is not None:
        per_token_kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        kl = (per_token_kl * mask).sum().detach() / mask.sum().clamp(min=1.0)
        if beta != 0.0:
            per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    elif loss_type == "dapo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    else:
        raise ValueError(loss_type)
    is_low = (coef_1 < 1 - epsilon_low) & (adv < 0)
    is_high = (coef_1 > 1 + epsilon_high) & (adv > 0)
    clip_ratio = ((is_low | is_high).float() * mask).sum() / mask.sum().clamp(min=1.0)
    return loss, logps.detach(), kl, clip_ratio.detach()
