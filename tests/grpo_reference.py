"""Plain-torch GRPO loss the slow, obvious way: full [B, T, V] logits, log_softmax, then TRL GRPOTrainer's
formula line by line. The tests and the benchmark ("naive") compare grpo_studio.kernels against it."""
from __future__ import annotations

import torch


def reference_logprobs(hidden, weight, ids, temperature=1.0):
    logits = (hidden @ weight.T).float() / temperature  # [B, T, V]
    return torch.log_softmax(logits, dim=-1).gather(-1, ids.long().unsqueeze(-1)).squeeze(-1)


def reference_grpo_loss(hidden, weight, ids, mask, advantages, *, old_logps=None, ref_logps=None, beta=0.0,
                        epsilon_low=0.2, epsilon_high=0.2, loss_type="dapo", max_completion_length=None,
                        temperature=1.0, importance_sampling_level="token", with_entropy=False):
    """Returns (loss, logps, kl, clip_ratio, entropy) with autograd through hidden / weight (entropy: the
    masked mean entropy of softmax(logits / T), as TRL logs it; None unless with_entropy)."""
    logps = reference_logprobs(hidden, weight, ids, temperature)
    mask = mask.float()
    adv = advantages.float().unsqueeze(1)
    old = logps.detach() if old_logps is None else old_logps
    log_ratio = logps - old
    if importance_sampling_level == "sequence":  # GSPO: one ratio per sequence, [B, 1]
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_ratio)
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
    if importance_sampling_level == "sequence":  # TRL: clipped sequences over all sequences
        clip_ratio = (is_low | is_high).float().mean()
    else:
        clip_ratio = ((is_low | is_high).float() * mask).sum() / mask.sum().clamp(min=1.0)
    entropy = None
    if with_entropy:  # a second [B, T, V] pass, only when asked (the benchmark's "naive" skips it)
        log_probs = torch.log_softmax((hidden @ weight.T).float() / temperature, dim=-1)
        entropies = -(log_probs.exp() * log_probs).sum(-1).detach()
        entropy = (entropies * mask).sum() / mask.sum().clamp(min=1.0)
    return loss, logps.detach(), kl, clip_ratio.detach(), entropy
