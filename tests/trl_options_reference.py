"""TRL GRPOTrainer 1.16's `_compute_loss` for every loss type and loss option, line by line on full
[B, T, V] logits (the slow, obvious way), for the fused loss's tests and the comparison table. The options
arrive under TRL's own names (a dict of GRPOConfig fields); `sampling_logps` stands for vLLM's
sampling_per_token_logps (here: the fast sampler's own log-probs)."""
from __future__ import annotations

import math

import torch

TRL_DEFAULTS = dict(sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, vespo_k_pos=2.0, vespo_lambda_pos=3.0,
                    vespo_k_neg=3.0, vespo_lambda_neg=2.0, top_entropy_quantile=1.0, entropy_coef=0.0,
                    off_policy_mask_threshold=None, vllm_importance_sampling_correction=False,
                    vllm_importance_sampling_mode="sequence_mask", vllm_importance_sampling_clip_min=None,
                    vllm_importance_sampling_clip_max=3.0, use_bias_correction_kl=True)


def _importance_sampling_ratio(old, sampling, mask, args):
    """TRL's _generate_and_score_completions: the vLLM importance-sampling ratio."""
    diff = torch.nan_to_num((old - sampling) * mask, nan=0.0)
    if args["vllm_importance_sampling_mode"] in ("sequence_mask", "sequence_truncate"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    lo, hi = args["vllm_importance_sampling_clip_min"], args["vllm_importance_sampling_clip_max"]
    if args["vllm_importance_sampling_mode"].endswith("truncate"):
        return torch.clamp(ratio, min=lo, max=hi)
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    return ratio.masked_fill((ratio < lo) | (ratio > hi), 0.0)


def _gamma_weights(advantages, log_ratio, mask, is_ratio, args):
    lower = math.log(1e-8)
    seq = torch.sum(torch.clamp(log_ratio, -20.0, 20.0) * mask, dim=-1, keepdim=True)
    if is_ratio is not None:
        seq = seq + torch.sum(torch.clamp(torch.log(is_ratio), lower, 20.0), dim=-1, keepdim=True)
    log_w = torch.clamp(seq, lower, 20.0)
    nonneg = advantages >= 0
    k = torch.where(nonneg, args["vespo_k_pos"], args["vespo_k_neg"])
    lam = torch.where(nonneg, args["vespo_lambda_pos"], args["vespo_lambda_neg"]).clamp(min=1e-4)
    return torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def trl_loss(hidden, weight, ids, mask, advantages, *, old_logps=None, ref_logps=None, sampling_logps=None,
             beta=0.0, epsilon_low=0.2, epsilon_high=0.2, loss_type="dapo", max_completion_length=None,
             temperature=1.0, importance_sampling_level="token", trl_args: dict | None = None):
    """(loss, logps, clip_ratio, extras) with autograd through hidden / weight; one micro-batch, one process
    (num_items_in_batch = the batch's tokens, no gradient accumulation)."""
    args = {**TRL_DEFAULTS, **(trl_args or {})}
    logits = (hidden @ weight.T).float() / temperature
    log_probs = torch.log_softmax(logits, dim=-1)
    per_token_logps = log_probs.gather(-1, ids.long().unsqueeze(-1)).squeeze(-1)
    entropies = -(log_probs.exp() * log_probs).sum(-1)
    mask = mask.float()
    entropy_mask = None
    if args["top_entropy_quantile"] < 1.0:
        local = entropies.detach()[mask.bool()]
        if local.numel() == 0:
            entropy_mask = torch.zeros_like(mask, dtype=torch.bool)
        else:
            threshold = torch.quantile(local, 1 - args["top_entropy_quantile"])
            entropy_mask = ((entropies.detach() * mask) >= threshold) & mask.bool()
    adv = advantages.float().unsqueeze(1)
    old = per_token_logps.detach() if old_logps is None else old_logps
    is_ratio = None
    if args["vllm_importance_sampling_correction"] and sampling_logps is not None:
        is_ratio = _importance_sampling_ratio(old, sampling_logps, mask, args)
    if args["off_policy_mask_threshold"] is not None:
        behaviour = old if sampling_logps is None else sampling_logps
        kl_div = torch.nan_to_num(behaviour - per_token_logps.detach(), nan=0.0)
        avg = (kl_div * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)
        off_policy_mask = ((adv >= 0) | (avg <= args["off_policy_mask_threshold"])).float()
    log_ratio = per_token_logps - old
    if importance_sampling_level == "sequence":
        log_iw = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_iw = log_ratio
    coef_1 = torch.exp(log_iw)
    if ref_logps is not None:
        per_token_kl = torch.exp(ref_logps - per_token_logps) - (ref_logps - per_token_logps) - 1
        if args["use_bias_correction_kl"]:
            per_token_kl = per_token_kl * coef_1
    if loss_type == "cispo":
        per_token_loss = -torch.clamp(coef_1, max=epsilon_high).detach() * adv * per_token_logps
    elif loss_type in ("grpo", "bnpo", "dr_grpo", "dapo", "luspo"):
        coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
        per_token_loss = -torch.min(coef_1 * adv, coef_2 * adv)
    elif loss_type == "sapo":
        temps = torch.where(adv > 0, args["sapo_temperature_pos"], args["sapo_temperature_neg"])
        per_token_loss = -torch.sigmoid(temps * (coef_1 - 1)) * 4 / temps * adv
    elif loss_type == "vespo":
        phi = _gamma_weights(adv, log_ratio.detach(), mask, is_ratio, args)
        per_token_loss = -phi * adv * per_token_logps
    else:
        raise ValueError(loss_type)
    if args["off_policy_mask_threshold"] is not None:
        per_token_loss = per_token_loss * off_policy_mask
    if entropy_mask is not None:
        per_token_loss = per_token_loss * entropy_mask
    if is_ratio is not None and loss_type != "vespo":
        per_token_loss = per_token_loss * is_ratio
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type in ("grpo", "sapo"):
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    elif loss_type in ("cispo", "dapo", "vespo"):
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    else:  # luspo
        loss = (per_token_loss * mask).sum(-1).mean()
    if args["entropy_coef"] != 0.0:
        effective = mask if entropy_mask is None else mask * entropy_mask
        loss = loss - args["entropy_coef"] * (entropies * effective).sum() / effective.sum().clamp(min=1.0)

    def global_masked_mean(x):
        if x.shape[1] == 1:
            return x.float().mean()
        return (x.float() * mask).sum() / mask.sum().clamp(min=1.0)

    if loss_type == "cispo":
        clip_ratio = global_masked_mean((coef_1 > epsilon_high) & (adv > 0))
    elif loss_type in ("sapo", "vespo"):
        clip_ratio = torch.zeros(())  # TRL logs no clip for these: nothing is clipped
    else:
        clip_ratio = global_masked_mean(((coef_1 < 1 - epsilon_low) & (adv < 0)) |
                                        ((coef_1 > 1 + epsilon_high) & (adv > 0)))
    extras = {"entropy_mask": entropy_mask, "is_ratio": is_ratio}
    return loss, per_token_logps.detach(), clip_ratio.detach(), extras
