"""The fused GRPO loss's variants and argument checks: one table of loss types (how each normalises the
token losses; the loop reads it too), the importance-sampling levels, and the checks that make a bad call
fail before any compute. Torch only (shapes and dtypes)."""
from __future__ import annotations

from typing import NamedTuple

import torch

from .terms import SAMPLING_CORRECTION_MODES


class LossNormaliser(NamedTuple):
    """How a loss type turns the masked token losses into one number (the weight of a token is mask /
    normaliser). `per_token` says whether that normaliser counts tokens, which is what decides how the
    loop weights micro-batches (by their tokens, or by their sequences) so they add up to the full batch."""
    kind: str  # "sequence_mean" | "all_tokens" | "fixed_length" | "sequence_sum"
    per_token: bool
    description: str


# The one table of loss types (the loop reads `per_token` from here too).
LOSS_TYPES = {
    "grpo": LossNormaliser("sequence_mean", False, "per-sequence mean, then mean over sequences"),
    "bnpo": LossNormaliser("all_tokens", True, "mean over all completion tokens"),
    "dr_grpo": LossNormaliser("fixed_length", False, "sum / (batch size * max_completion_length)"),
    "dapo": LossNormaliser("all_tokens", True, "sum / number of completion tokens"),
    # TRL 1.16's further loss types: their policy terms are terms.py, their normalisers TRL's.
    "cispo": LossNormaliser("all_tokens", True, "clipped IS weight x A x logp, sum / completion tokens"),
    "sapo": LossNormaliser("sequence_mean", False, "soft sigmoid gate instead of the clip, per-sequence mean"),
    "luspo": LossNormaliser("sequence_sum", False, "per-sequence sum (length-weighted), mean over sequences"),
    "vespo": LossNormaliser("all_tokens", True, "gamma weight of the sequence ratio x A x logp, sum / tokens"),
}

# Where the importance ratio is taken: per token (GRPO), or per sequence as the exp of the mean token
# log-ratio (GSPO), the same ratio for every token of a completion.
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")


def normalises_per_token(loss_type: str) -> bool:
    return LOSS_TYPES[loss_type].per_token


# ---------------------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------------------

def check_logprob_args(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor,
                        temperature: float, chunk_size: int | None) -> None:
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be [B, T, H], got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[2]:
        raise ValueError(f"weight must be [V, H] with H = {hidden.shape[2]} (hidden's last dim), "
                         f"got shape {tuple(weight.shape)}")
    if tuple(ids.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"completion ids must be [B, T] = {tuple(hidden.shape[:2])}, got {tuple(ids.shape)}")
    if ids.is_floating_point():
        raise ValueError("completion ids must be an integer tensor")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (rows per chunk) or None, got {chunk_size!r}")


def check_loss_args(hidden, weight, ids, mask, advantages, old_logps, ref_logps, beta, epsilon_low,
                     epsilon_high, loss_type, max_completion_length, temperature, chunk_size,
                     importance_sampling_level="token") -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {sorted(LOSS_TYPES)}")
    if importance_sampling_level not in IMPORTANCE_SAMPLING_LEVELS:
        raise ValueError(f"unknown importance_sampling_level {importance_sampling_level!r}; choose token "
                         "(GRPO) or sequence (GSPO)")
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length < 1):
        raise ValueError("loss_type 'dr_grpo' divides by batch size * max_completion_length: "
                         "pass max_completion_length (a positive int)")
    check_logprob_args(hidden, weight, ids, temperature, chunk_size)
    bt = tuple(hidden.shape[:2])
    if tuple(mask.shape) != bt:
        raise ValueError(f"completion_mask must be [B, T] = {bt}, got {tuple(mask.shape)}")
    if tuple(advantages.shape) != bt[:1]:
        raise ValueError(f"advantages must be [B] = ({bt[0]},), got {tuple(advantages.shape)}")
    for name, t in (("old_logps", old_logps), ("ref_logps", ref_logps)):
        if t is not None and tuple(t.shape) != bt:
            raise ValueError(f"{name} must be [B, T] = {bt}, got {tuple(t.shape)}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and ref_logps is None:
        raise ValueError("beta > 0 adds a KL penalty to the reference model: pass ref_logps "
                         "(token_logprobs of the reference weights) or set beta=0")
    if epsilon_low < 0 or epsilon_high < 0:
        raise ValueError(f"epsilon_low and epsilon_high must be >= 0, got {epsilon_low}, {epsilon_high}")


def check_options(options, loss_type: str, sampling_logps: torch.Tensor | None, shape: tuple) -> None:
    """The loss options (terms.LossOptions) and the sampler's log-probs they may use."""
    if not 0.0 <= options.top_entropy_quantile <= 1.0:
        raise ValueError(f"top_entropy_quantile must be in [0, 1], got {options.top_entropy_quantile}")
    if options.off_policy_mask_threshold is not None and options.off_policy_mask_threshold < 0:
        raise ValueError(f"off_policy_mask_threshold must be >= 0, got {options.off_policy_mask_threshold}")
    if min(options.sapo_temperature_pos, options.sapo_temperature_neg) <= 0:
        raise ValueError("sapo_temperature_pos and sapo_temperature_neg must be > 0 (the gate divides by them)")
    mode = options.sampling_correction
    if mode is not None and mode not in SAMPLING_CORRECTION_MODES:
        raise ValueError(f"unknown sampling correction mode {mode!r}; choose one of {SAMPLING_CORRECTION_MODES}")
    if mode is not None and mode.endswith("truncate") and options.sampling_clip_min is None \
            and options.sampling_clip_max is None:
        raise ValueError("a *_truncate sampling correction needs sampling_clip_min or sampling_clip_max")
    lo, hi = options.sampling_clip_min, options.sampling_clip_max
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"sampling_clip_min ({lo}) must be less than sampling_clip_max ({hi})")
    if loss_type == "vespo" and mode is not None and mode.startswith("sequence"):
        raise ValueError("VESPO folds the sampler correction into its sequence weight token by token: use "
                         "token_truncate or token_mask (as TRL requires)")
    if sampling_logps is not None and tuple(sampling_logps.shape) != shape:
        raise ValueError(f"sampling_logps must be [B, T] = {shape}, got {tuple(sampling_logps.shape)}")
