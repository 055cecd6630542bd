"""The fused loss's per-token view: from the flat log-probs (and entropies) of the completion tokens to each
token's loss and its coefficients dLoss/dlogp and dLoss/dentropy, which both backends multiply into the
gradient w.r.t. the logits (functional.py). Each loss type's policy term is in terms.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from . import terms as gl_terms
from .args import LOSS_TYPES
from .terms import LossOptions


@dataclass(frozen=True)
class LossSpec:
    beta: float
    epsilon_low: float
    epsilon_high: float
    temperature: float
    chunk_rows: int
    sequence_level: bool = False
    length: int = 1  # completion tokens per row of the batch (T): flat index // length = sequence
    loss_type: str = "dapo"
    options: LossOptions = LossOptions()


class Flat(NamedTuple):
    """The batch, flat [B * T] (one entry per completion token)."""
    mask: torch.Tensor
    adv: torch.Tensor
    weights: torch.Tensor  # mask / the loss type's normaliser
    policy_weights: torch.Tensor  # the same, spread over each sequence at sequence level
    entropy_weights: torch.Tensor  # mask / number of completion tokens (the entropy bonus is a token mean)
    old: torch.Tensor | None
    ref: torch.Tensor | None
    sampling: torch.Tensor | None  # the sampler's own log-probs (off-policy mask, sampler correction)


class Terms(NamedTuple):
    loss: torch.Tensor  # per-token loss before masking and normalising
    coef: torch.Tensor  # dLoss/dlogp per token, weighted and masked
    entropy_coef: torch.Tensor | None  # dLoss/dentropy per token (the entropy bonus), None without one
    clipped: torch.Tensor  # bool: the clip TRL counts for this loss type was active
    kl: torch.Tensor | None  # per-token k3 KL estimate to the reference, when ref log-probs are given
    extra: gl_terms.PolicyTerms


def token_weights(mask: torch.Tensor, loss_type: str, max_completion_length: int | None) -> torch.Tensor:
    """Weight of each token in the final loss: mask / the loss type's normaliser."""
    batch, kind = mask.shape[0], LOSS_TYPES[loss_type].kind
    if kind == "sequence_mean":
        return mask / (batch * mask.sum(-1, keepdim=True).clamp(min=1.0))
    if kind == "fixed_length":
        if max_completion_length is None:
            raise ValueError(f"loss_type {loss_type!r} normalises by max_completion_length: pass it")
        return mask / float(batch * max_completion_length)
    if kind == "sequence_sum":
        return mask / float(batch)
    return mask / mask.sum().clamp(min=1.0)


def spread(weights: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """At sequence level the ratio is exp(mean log-ratio), so every token carries 1/length of its
    sequence's summed weight (flat in, flat out)."""
    per_seq = weights.view(-1, length).sum(-1) / mask.view(-1, length).sum(-1).clamp(min=1.0)
    return per_seq.repeat_interleave(length) * mask


def needs_all_rows(spec: LossSpec, flat: Flat) -> bool:
    """A token's coefficient depends on other rows' log-probs or entropies: the log-probs (and entropies)
    come first, then the gradients in a second sweep."""
    o = spec.options
    has_old = flat.old is not None
    kl_ratio = o.use_bias_correction_kl and spec.beta != 0.0 and flat.ref is not None
    return ((spec.sequence_level and (has_old or kl_ratio)) or spec.loss_type == "vespo"  # VESPO: per sequence
            or o.top_entropy_quantile < 1.0
            or (o.off_policy_mask_threshold is not None and (has_old or flat.sampling is not None))
            or (o.sampling_correction is not None and flat.sampling is not None
                and o.sampling_correction.startswith("sequence")))


def token_terms(logp, entropy, flat: Flat, spec: LossSpec, rows: slice = slice(None)) -> Terms:
    """Loss and coefficients of the tokens in `rows` (all rows whenever needs_all_rows)."""
    mask, adv, weights = flat.mask[rows], flat.adv[rows], flat.weights[rows]
    old = None if flat.old is None else flat.old[rows]
    ref = None if flat.ref is None else flat.ref[rows]
    sampling = None if flat.sampling is None else flat.sampling[rows]
    # On-policy the log-ratio is exactly 0 (TRL's logp - logp.detach()): ratio 1, d ratio / d log-ratio 1.
    token_log_ratio = torch.zeros_like(logp) if old is None else torch.where(mask != 0, logp - old,
                                                                             torch.zeros_like(logp))
    log_ratio = token_log_ratio
    if spec.sequence_level and old is not None:  # GSPO: the sequence's mean log-ratio for each of its tokens
        log_ratio = gl_terms.sequence_mean(token_log_ratio, mask, spec.length)
    behaviour = sampling if sampling is not None else old
    extra = gl_terms.policy_terms(
        spec.loss_type, log_ratio, logp, adv, spec.epsilon_low, spec.epsilon_high, spec.options,
        token_log_ratio=token_log_ratio, mask=mask, length=spec.length,
        train_logp=logp if old is None else old, sampling_logp=sampling, behaviour_logp=behaviour,
        entropy=entropy)
    term, multiplier = extra.term, extra.multiplier
    loss = term.loss if multiplier is None else term.loss * multiplier
    scaled = weights if multiplier is None else weights * multiplier
    if not term.by_ratio:
        coef = term.grad * scaled
    elif multiplier is None:
        coef = term.grad * flat.policy_weights[rows]
    else:  # multipliers vary within a sequence: spread the weighted sum afresh (all rows are here)
        coef = term.grad * (spread(scaled, mask, spec.length) if spec.sequence_level else scaled)
    kl = None
    if ref is not None:
        diff = ref - logp
        kl = torch.exp(diff) - diff - 1.0
        if spec.beta != 0.0 and spec.options.use_bias_correction_kl:
            # TRL 1.16's default: beta * KL * ratio, the ratio differentiable (unbiased reverse-KL gradient)
            ratio = torch.exp(log_ratio)
            loss = loss + spec.beta * kl * ratio
            kl_weighted = spec.beta * kl * ratio * weights
            coef = coef + spec.beta * (1.0 - torch.exp(diff)) * ratio * weights + (
                spread(kl_weighted, mask, spec.length) if spec.sequence_level else kl_weighted)
        elif spec.beta != 0.0:
            loss = loss + spec.beta * kl
            coef = coef + spec.beta * (1.0 - torch.exp(diff)) * weights
    entropy_coef = None
    if spec.options.entropy_coef != 0.0:  # loss -= coef * mean entropy of the tokens the policy loss uses
        if extra.entropy_mask is None:
            share = flat.entropy_weights[rows]
        else:
            chosen = mask * extra.entropy_mask
            share = chosen / chosen.sum().clamp(min=1.0)
        entropy_coef = torch.where(mask != 0, -spec.options.entropy_coef * share, torch.zeros_like(logp))
    coef = torch.where(mask != 0, coef, torch.zeros_like(logp))
    return Terms(loss, coef, entropy_coef, term.clipped, kl, extra)
