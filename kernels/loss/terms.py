"""The per-token terms of every loss type TRL's GRPOTrainer (1.16) offers, and their derivatives w.r.t. the
token log-prob: the fused loss (functional.py) turns these into one coefficient per token, which both the
chunked torch pass and the Triton gradient kernel multiply into (onehot - softmax).

Read top to bottom:
1. LossOptions: the knobs beyond clipping and KL, named as TRL names them,
2. the policy term of each loss type (hard clip, CISPO, SAPO, VESPO),
3. the detached multipliers TRL applies to a token's policy loss (off-policy sequence mask, top-entropy
   mask, truncated importance sampling against the sampler's log-probs),
4. `policy_terms`, which puts them together for a flat batch of tokens.

All tensors are flat [B * T] (one entry per completion token; `length` = T turns a flat index into its
sequence); every multiplier is detached, as in TRL, so it scales a token's gradient but has none itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

# Sampler correction modes: TRL's vllm_importance_sampling_mode values (token / sequence, truncate / mask).
SAMPLING_CORRECTION_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


@dataclass(frozen=True)
class LossOptions:
    """TRL's names and defaults. `sampling_correction` is TRL's vllm_importance_sampling_mode (None = no
    correction); clip_min/max are its vllm_importance_sampling_clip_min/max."""
    sapo_temperature_pos: float = 1.0
    sapo_temperature_neg: float = 1.05
    vespo_k_pos: float = 2.0
    vespo_lambda_pos: float = 3.0
    vespo_k_neg: float = 3.0
    vespo_lambda_neg: float = 2.0
    top_entropy_quantile: float = 1.0
    entropy_coef: float = 0.0
    off_policy_mask_threshold: float | None = None
    sampling_correction: str | None = None
    sampling_clip_min: float | None = None
    sampling_clip_max: float | None = 3.0
    use_bias_correction_kl: bool = False  # beta * KL times the (differentiable) ratio; TRL 1.16's config: True

    def needs_entropy(self) -> bool:
        return self.top_entropy_quantile < 1.0 or self.entropy_coef != 0.0


# ---------------------------------------------------------------------------------------------------------
# 2. Policy terms
# ---------------------------------------------------------------------------------------------------------

class PolicyTerm(NamedTuple):
    loss: torch.Tensor  # per-token policy loss
    grad: torch.Tensor  # its derivative: w.r.t. the log importance weight (by_ratio) or the token's logp
    by_ratio: bool  # True: grad is d/d log-ratio (spread over a sequence at sequence level); False: d/d logp
    clipped: torch.Tensor  # bool: the clip that TRL counts for this loss type was active


def clipped_term(ratio, adv, eps_low: float, eps_high: float) -> PolicyTerm:
    """grpo / bnpo / dr_grpo / dapo / luspo: -min(r A, clip(r, 1 - eps_low, 1 + eps_high) A). The clipped
    branch is strictly smaller exactly when (r > hi, A > 0) or (r < lo, A < 0), and constant in r there."""
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    loss = -torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv)
    clipped = ((ratio < lo) & (adv < 0)) | ((ratio > hi) & (adv > 0))
    return PolicyTerm(loss, torch.where(clipped, torch.zeros_like(ratio), -adv * ratio), True, clipped)


def cispo_term(ratio, logp, adv, eps_high: float) -> PolicyTerm:
    """CISPO (MiniMax-M1): -sg(min(r, eps_high)) A logp; the clipped weight carries no gradient."""
    weight = ratio.clamp(max=eps_high)
    return PolicyTerm(-weight * adv * logp, -weight * adv, False, (ratio > eps_high) & (adv > 0))


def sapo_term(ratio, adv, options: LossOptions) -> PolicyTerm:
    """SAPO: -sigmoid(tau (r - 1)) 4 / tau A, tau by the advantage's sign; d/d log r = -4 s (1 - s) r A."""
    tau = torch.where(adv > 0, options.sapo_temperature_pos, options.sapo_temperature_neg).to(ratio.dtype)
    gate = torch.sigmoid(tau * (ratio - 1.0))
    return PolicyTerm(-gate * 4.0 / tau * adv, -4.0 * gate * (1.0 - gate) * ratio * adv, True,
                      torch.zeros_like(ratio, dtype=torch.bool))


def vespo_weights(log_ratio, adv, mask, length: int, options: LossOptions, log_is=None) -> torch.Tensor:
    """VESPO's gamma weight phi(w) = exp(lambda + k log w - lambda w) of each sequence (broadcast to its
    tokens), w = exp(sum of the clamped token log-ratios (+ the sampler correction's log-ratios))."""
    low = math.log(1e-8)
    per_seq = (log_ratio.clamp(-20.0, 20.0) * mask).view(-1, length).sum(-1)
    if log_is is not None:
        per_seq = per_seq + log_is.clamp(low, 20.0).view(-1, length).sum(-1)
    log_w = per_seq.clamp(low, 20.0).repeat_interleave(length)
    nonneg = adv >= 0
    k = torch.where(nonneg, options.vespo_k_pos, options.vespo_k_neg).to(log_w.dtype)
    lam = torch.where(nonneg, options.vespo_lambda_pos, options.vespo_lambda_neg).to(log_w.dtype).clamp(min=1e-4)
    return torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


# ---------------------------------------------------------------------------------------------------------
# 3. Detached multipliers
# ---------------------------------------------------------------------------------------------------------

def sequence_mean(values, mask, length: int) -> torch.Tensor:
    """Masked mean of each sequence, broadcast to its tokens."""
    per_seq = (values * mask).view(-1, length).sum(-1) / mask.view(-1, length).sum(-1).clamp(min=1.0)
    return per_seq.repeat_interleave(length)


def off_policy_mask(logp, behaviour, adv, mask, length: int, threshold: float) -> torch.Tensor:
    """DeepSeek-V3.2's off-policy sequence mask: drop a sequence with A < 0 whose mean log-ratio of the
    sampling policy to the current one exceeds the threshold (1 keep, 0 drop)."""
    kl = sequence_mean(torch.nan_to_num(behaviour - logp, nan=0.0), mask, length)
    return ((adv >= 0) | (kl <= threshold)).to(logp.dtype)


def high_entropy_mask(entropy, mask, quantile: float) -> torch.Tensor:
    """Keep the tokens whose entropy is at or above the (1 - top_entropy_quantile) quantile of the batch's
    completion tokens (Beyond the 80/20 rule)."""
    on = mask != 0
    if not bool(on.any()):
        return torch.zeros_like(entropy)
    threshold = torch.quantile(entropy[on].float(), 1.0 - quantile)
    return ((entropy * mask >= threshold) & on).to(entropy.dtype)


class SamplerCorrection(NamedTuple):
    ratio: torch.Tensor  # per token: the truncated / masked importance ratio (train / sampler)
    log_ratio: torch.Tensor  # per token: the uncorrected log-ratio (0 on padding)
    capped: torch.Tensor  # bool per token: its ratio (or its sequence's) was truncated or masked


def sampler_correction(train_logp, sampling_logp, mask, length: int, options: LossOptions) -> SamplerCorrection:
    """TRL's vllm_importance_sampling_correction: exp(train - sampler) per token, or exp of the sequence's
    summed difference, truncated to [clip_min, clip_max] or masked to 0 outside it."""
    diff = torch.nan_to_num((train_logp - sampling_logp) * mask, nan=0.0)
    mode = options.sampling_correction
    assert mode is not None  # called only when a sampling correction is on
    per = diff.view(-1, length).sum(-1).repeat_interleave(length) if mode.startswith("sequence") else diff
    ratio = torch.exp(per)
    lo = -math.inf if options.sampling_clip_min is None else options.sampling_clip_min
    hi = math.inf if options.sampling_clip_max is None else options.sampling_clip_max
    outside = (ratio < lo) | (ratio > hi)
    corrected = ratio.clamp(lo, hi) if mode.endswith("truncate") else ratio.masked_fill(outside, 0.0)
    return SamplerCorrection(corrected, diff, outside)


# ---------------------------------------------------------------------------------------------------------
# 4. Putting them together
# ---------------------------------------------------------------------------------------------------------

class PolicyTerms(NamedTuple):
    term: PolicyTerm
    multiplier: torch.Tensor | None  # detached factor on each token's policy loss (None = 1)
    correction: SamplerCorrection | None
    entropy_mask: torch.Tensor | None


def policy_terms(loss_type: str, log_ratio, logp, adv, eps_low: float, eps_high: float, options: LossOptions, *,
                 token_log_ratio=None, mask=None, length: int = 1, train_logp=None, sampling_logp=None,
                 behaviour_logp=None, entropy=None) -> PolicyTerms:
    """The policy term of `loss_type` and the multipliers that apply. log_ratio is the importance weight's
    log (per token, or the sequence's mean broadcast); token_log_ratio the raw per-token one (VESPO); the
    rest is needed only by the options that use it (all rows of each sequence, then)."""
    correction = None
    if options.sampling_correction is not None and sampling_logp is not None:
        correction = sampler_correction(train_logp, sampling_logp, mask, length, options)
    ratio = torch.exp(log_ratio)
    if loss_type == "cispo":
        term = cispo_term(ratio, logp, adv, eps_high)
    elif loss_type == "sapo":
        term = sapo_term(ratio, adv, options)
    elif loss_type == "vespo":
        log_is = None if correction is None else torch.log(correction.ratio)
        phi = vespo_weights(token_log_ratio, adv, mask, length, options, log_is)
        term = PolicyTerm(-phi * adv * logp, -phi * adv, False, torch.zeros_like(phi, dtype=torch.bool))
    else:
        term = clipped_term(ratio, adv, eps_low, eps_high)
    factors = []
    if options.off_policy_mask_threshold is not None and behaviour_logp is not None:
        factors.append(off_policy_mask(logp, behaviour_logp, adv, mask, length, options.off_policy_mask_threshold))
    entropy_mask = None
    if options.top_entropy_quantile < 1.0 and entropy is not None:
        entropy_mask = high_entropy_mask(entropy, mask, options.top_entropy_quantile)
        factors.append(entropy_mask)
    if correction is not None and loss_type != "vespo":  # VESPO folds the correction into its weight
        factors.append(correction.ratio)
    multiplier = None
    for factor in factors:
        multiplier = factor if multiplier is None else multiplier * factor
    return PolicyTerms(term, multiplier, correction, entropy_mask)
