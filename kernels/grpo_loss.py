"""Fused GRPO loss: from last hidden states and the lm_head weight straight to TRL's GRPO loss, without
ever building the `[B, T, V]` logits.

Read top to bottom (the loss variants and argument checks, run before any compute, are grpo_loss_args.py):
1. the output and the chunk size,
2. the per-token GRPO terms (TRL's formula and its derivative w.r.t. the token log-prob),
3. the chunked torch pass (CPU and any device without Triton): for each chunk of rows it builds that chunk's
   logits, takes an fp32 log-sum-exp, and, when gradients are wanted, turns the same buffer into the
   gradient w.r.t. the logits and multiplies it back into the hidden / weight gradients,
4. the autograd.Function: the gradients are formed during forward (the loss is a scalar, so backward only
   scales them by the incoming gradient),
5. the functional API `grpo_loss` and `token_logprobs`.

On CUDA (and under `TRITON_INTERPRET=1`) the same pass runs as Triton kernels: see grpo_loss_triton.py.

Math. With z = h·Wᵀ / temperature, logp = z[id] − logsumexp(z). Every GRPO term depends on the logits only
through logp, so dLoss/dz = g · (onehot(id) − softmax(z)) with g = dLoss/dlogp for that token; g needs only
that token's logp and normalisers known from the mask up front, which is what lets one pass per chunk
produce the log-probs and the gradients together. GSPO's sequence-level ratio with old log-probs is the
exception (a token's g depends on its whole sequence's log-probs): the log-probs come first, then the
gradients in a second sweep.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from .grpo_loss_args import LOSS_TYPES, check_logprob_args, check_loss_args

# Rows per chunk on the torch path are chosen so one chunk's fp32 logits stay near this many bytes.
_CHUNK_BYTES = 16 << 20


class GRPOLossOutput(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable w.r.t. hidden (and weight when it requires grad)
    logps: torch.Tensor  # [B, T] fp32 per-token log-probs, detached
    kl: torch.Tensor  # scalar: mean per-token KL(ref || policy) over completion tokens; 0 without ref_logps
    clip_ratio: torch.Tensor  # scalar: share of completion tokens (of sequences, at sequence level) where the
    #                           clip was active (TRL's region)
    entropy: torch.Tensor | None = None  # scalar: mean entropy of logits / T over completion tokens, when asked


@dataclass(frozen=True)
class _LossSpec:
    beta: float
    epsilon_low: float
    epsilon_high: float
    temperature: float
    chunk_rows: int
    sequence_level: bool = False
    length: int = 1  # completion tokens per row of the batch (T): flat index // length = sequence


def _chunk_rows(chunk_size: int | None, vocab: int) -> int:
    if chunk_size is not None:
        return chunk_size
    return max(1, _CHUNK_BYTES // (4 * max(vocab, 1)))


# ---------------------------------------------------------------------------------------------------------
# 2. Per-token GRPO terms (TRL's GRPOTrainer formula)
# ---------------------------------------------------------------------------------------------------------

class _TokenTerms(NamedTuple):
    loss: torch.Tensor  # per-token loss before masking and normalising
    dpolicy: torch.Tensor  # derivative of the clipped policy term w.r.t. the log importance ratio
    dkl: torch.Tensor | None  # derivative of beta * KL w.r.t. the token's log-prob (None without a KL term)
    clipped: torch.Tensor  # bool: the clipped branch won the min (no policy gradient), as TRL counts it
    kl: torch.Tensor | None  # per-token k3 KL estimate to the reference, when ref log-probs are given


def _token_terms(log_ratio, logp, ref, adv, spec: _LossSpec) -> _TokenTerms:
    """TRL's terms from the log importance ratio (per token, or the sequence's mean broadcast to its tokens).
    On-policy the log-ratio is exactly 0 (TRL's logp - logp.detach()): ratio 1, d ratio / d log-ratio 1."""
    ratio = torch.exp(log_ratio)
    lo, hi = 1.0 - spec.epsilon_low, 1.0 + spec.epsilon_high
    loss = -torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv)
    # The clipped term is strictly the smaller one exactly when (ratio > hi, A > 0) or (ratio < lo, A < 0);
    # there it is constant in the ratio. Everywhere else the unclipped term's derivative -A * ratio applies
    # (at a tie both branches have that same derivative).
    clipped = ((ratio < lo) & (adv < 0)) | ((ratio > hi) & (adv > 0))
    dpolicy = torch.where(clipped, torch.zeros_like(ratio), -adv * ratio)
    kl = dkl = None
    if ref is not None:
        diff = ref - logp
        kl = torch.exp(diff) - diff - 1.0
        if spec.beta != 0.0:
            loss = loss + spec.beta * kl
            dkl = spec.beta * (1.0 - torch.exp(diff))
    return _TokenTerms(loss, dpolicy, dkl, clipped, kl)


def _token_weights(mask: torch.Tensor, loss_type: str, max_completion_length: int | None) -> torch.Tensor:
    """Weight of each token in the final loss: mask / the loss type's normaliser."""
    batch, kind = mask.shape[0], LOSS_TYPES[loss_type].kind
    if kind == "sequence_mean":
        return mask / (batch * mask.sum(-1, keepdim=True).clamp(min=1.0))
    if kind == "fixed_length":
        return mask / float(batch * max_completion_length)
    return mask / mask.sum().clamp(min=1.0)


def _policy_weights(mask: torch.Tensor, weights: torch.Tensor, sequence_level: bool) -> torch.Tensor:
    """How much a token's log-prob moves the policy term: its own weight at token level; at sequence level
    the ratio is exp(mean log-ratio), so every token carries 1/length of its sequence's summed weight."""
    if not sequence_level:
        return weights
    return weights.sum(-1, keepdim=True) * mask / mask.sum(-1, keepdim=True).clamp(min=1.0)


def _sequence_log_ratio(log_ratio: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """GSPO's log importance weight, the masked mean log-ratio of each sequence, broadcast to its tokens
    (flat [B * T] in, flat out)."""
    per_row = (log_ratio * mask).view(-1, length).sum(-1) / mask.view(-1, length).sum(-1).clamp(min=1.0)
    return per_row.repeat_interleave(length)


def _log_ratio(logp, old, mask, spec: _LossSpec, rows: slice = slice(None)) -> torch.Tensor:
    if old is None:
        return torch.zeros_like(logp)
    if spec.sequence_level:  # needs every row of each sequence: the callers pass all rows
        return _sequence_log_ratio(torch.where(mask != 0, logp - old, torch.zeros_like(logp)), mask,
                                   spec.length)
    return logp - old[rows]


# ---------------------------------------------------------------------------------------------------------
# 3. The chunked pass (torch); Triton's version lives in grpo_loss_triton.py
# ---------------------------------------------------------------------------------------------------------

# coef_fn(logp_of_rows, rows) -> dLoss/dlogp for those rows (already weighted and masked)
CoefFn = Callable[[torch.Tensor, slice], torch.Tensor]


def _uses_triton(t: torch.Tensor) -> bool:
    """Triton on CUDA tensors; also on CPU tensors when the Triton interpreter is switched on (tests).
    GRPO_STUDIO_NO_TRITON=1 forces the chunked torch path (a fallback should a kernel misbehave)."""
    if os.environ.get("GRPO_STUDIO_NO_TRITON") == "1":
        return False
    if not (t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


class _PassResult(NamedTuple):
    logp: torch.Tensor  # [N] fp32 log-probs of the ids
    entropy: torch.Tensor | None  # [N] fp32 entropy of each row's softmax, when asked for
    grad_h: torch.Tensor | None
    grad_w: torch.Tensor | None


# Columns per slice when the torch path sums p·log p for the entropy (bounds that temporary's size).
_ENTROPY_COLUMNS = 4096


def _torch_logprobs_and_grads(h2d: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, temperature: float,
                chunk_rows: int, coef_fn: CoefFn | None = None, need_h: bool = False, need_w: bool = False,
                need_entropy: bool = False) -> _PassResult:
    """Log-probs of `ids` for every row and, with coef_fn, the gradients of sum(coef * logp)."""
    n_rows, vocab = h2d.shape[0], weight.shape[0]
    fp32 = weight.dtype == torch.float32
    logp = torch.empty(n_rows, dtype=torch.float32, device=h2d.device)
    entropy = torch.empty(n_rows, dtype=torch.float32, device=h2d.device) if need_entropy else None
    grad_h = torch.empty_like(h2d) if need_h else None
    grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
    # One [chunk, V] fp32 buffer, allocated once and reused by every chunk: allocating it per chunk lets
    # the allocator's fragmentation grow the process's peak memory well past one chunk.
    buffer = torch.empty(min(chunk_rows, n_rows), vocab, dtype=torch.float32, device=h2d.device)
    for start in range(0, n_rows, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n_rows))
        h, idx = h2d[rows], ids[rows, None]
        z = buffer[: rows.stop - rows.start]
        if fp32:
            torch.mm(h, weight.T, out=z)
        else:
            z.copy_(h @ weight.T)
        if temperature != 1.0:
            z.div_(temperature)
        top = z.amax(1, keepdim=True)
        picked = z.gather(1, idx)
        z.sub_(top).exp_()
        sum_exp = z.sum(1, keepdim=True)
        logp[rows] = (picked - top - sum_exp.log()).squeeze(1)
        if need_entropy:  # H = log S - sum(e log e) / S with e = exp(z - max), S = sum(e)
            e_log_e = sum(torch.special.xlogy(z[:, c:c + _ENTROPY_COLUMNS], z[:, c:c + _ENTROPY_COLUMNS]).sum(1)
                          for c in range(0, vocab, _ENTROPY_COLUMNS))
            entropy[rows] = sum_exp.log().squeeze(1) - e_log_e / sum_exp.squeeze(1)
        if coef_fn is None or not (need_h or need_w):
            continue
        # d sum(coef * logp) / dz = coef / temperature * (onehot(id) - softmax(z)), built in z's buffer.
        scale = (coef_fn(logp[rows], rows) / temperature).unsqueeze(1)
        if not bool(scale.any()):  # all padding or zero advantage: nothing flows back from these rows
            if need_h:
                grad_h[rows] = 0
            continue
        z.mul_(-scale / sum_exp)
        z.scatter_add_(1, idx, scale)
        if need_h:
            if fp32:
                torch.mm(z, weight, out=grad_h[rows])
            else:
                grad_h[rows] = z.to(weight.dtype) @ weight
        if need_w:
            grad_w.addmm_(z.T, h if fp32 else h.float())
    return _PassResult(logp, entropy, grad_h, grad_w)


def _logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, coef_fn=None, need_h=False, need_w=False,
          need_entropy=False, coef_needs_all_rows=False) -> _PassResult:
    """coef_needs_all_rows: the coefficient of a row depends on other rows' log-probs (GSPO's sequence
    ratio with old log-probs), so the log-probs come first and the gradients in a second sweep; Triton
    works that way anyway, the torch path then rebuilds each chunk's logits once more."""
    wants_grad = coef_fn is not None and (need_h or need_w)
    if _uses_triton(h2d):
        from . import grpo_loss_triton

        logp, lse, entropy = grpo_loss_triton.logprobs(h2d, weight, ids, temperature)
        if not wants_grad:
            return _PassResult(logp, entropy, None, None)
        coef = coef_fn(logp, slice(None))
        grad_h, grad_w = grpo_loss_triton.grads(h2d, weight, ids, lse, coef, temperature, need_h, need_w)
        return _PassResult(logp, entropy, grad_h, grad_w)
    if wants_grad and coef_needs_all_rows:
        first = _torch_logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, need_entropy=need_entropy)
        coef = coef_fn(first.logp, slice(None))
        second = _torch_logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, lambda _logp, rows: coef[rows],
                             need_h, need_w)
        return _PassResult(first.logp, first.entropy, second.grad_h, second.grad_w)
    return _torch_logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, coef_fn, need_h, need_w, need_entropy)


def _loss_from_logps(logp, old, ref, adv, weights, mask, spec: _LossSpec):
    """Loss value and the two metrics from the (flat, detached) log-probs."""
    terms = _token_terms(_log_ratio(logp, old, mask, spec), logp, ref, adv, spec)
    on = mask != 0
    zero = torch.zeros((), dtype=torch.float32, device=logp.device)
    # where(), not a product: a padding token's terms may be inf, and inf * 0 would poison the sum.
    loss = torch.where(on, terms.loss * weights, zero).sum()
    count = mask.sum().clamp(min=1.0)
    if spec.sequence_level:  # one ratio per sequence: TRL counts clipped sequences over all sequences
        clip_ratio = terms.clipped.view(-1, spec.length)[:, 0].float().mean()
    else:
        clip_ratio = torch.where(on, terms.clipped.float() * mask, zero).sum() / count
    kl = zero if terms.kl is None else torch.where(on, terms.kl * mask, zero).sum() / count
    return loss, kl, clip_ratio


def _masked_mean(values: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    if values is None:
        return torch.full((), float("nan"), device=mask.device)
    return torch.where(mask != 0, values, torch.zeros_like(values)).sum() / mask.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------------------------
# 4. autograd.Function
# ---------------------------------------------------------------------------------------------------------

class _GRPOLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, ids, mask, adv, weights, policy_weights, old, ref, spec: _LossSpec,
                need_entropy: bool):
        h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)

        def coef_fn(logp_rows: torch.Tensor, rows: slice) -> torch.Tensor:
            log_ratio = _log_ratio(logp_rows, old, mask, spec, rows)
            terms = _token_terms(log_ratio, logp_rows, None if ref is None else ref[rows], adv[rows], spec)
            coef = terms.dpolicy * policy_weights[rows]
            if terms.dkl is not None:
                coef = coef + terms.dkl * weights[rows]
            return torch.where(mask[rows] != 0, coef, torch.zeros_like(logp_rows))

        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        result = _logprobs_and_grads(h2d, weight, ids, spec.temperature, spec.chunk_rows, coef_fn, need_h, need_w,
                       need_entropy, coef_needs_all_rows=spec.sequence_level and old is not None)
        loss, kl, clip_ratio = _loss_from_logps(result.logp, old, ref, adv, weights, mask, spec)
        entropy = _masked_mean(result.entropy, mask)
        # Kept as attributes, not saved tensors, so backward can hand them over without a copy.
        ctx.grads = (result.grad_h, result.grad_w)
        ctx.meta = (hidden.shape, hidden.dtype, weight.dtype)
        logps = result.logp.view(hidden.shape[:2])
        ctx.mark_non_differentiable(logps, kl, clip_ratio, entropy)
        return loss, logps, kl, clip_ratio, entropy

    @staticmethod
    def backward(ctx, grad_loss, *_unused):
        if ctx.grads is None:
            raise RuntimeError("grpo_loss's backward can run only once (its gradients are formed in "
                               "forward and handed over); call grpo_loss again instead of retain_graph")
        grad_h, grad_w = ctx.grads
        ctx.grads = None
        shape, hidden_dtype, weight_dtype = ctx.meta
        # In place: the buffers are ours alone, so autograd can take them as .grad without another copy.
        if grad_h is not None:
            grad_h = grad_h.mul_(grad_loss.to(grad_h.dtype)).view(shape).to(hidden_dtype)
        if grad_w is not None:
            grad_w = grad_w.mul_(grad_loss).to(weight_dtype)
        return grad_h, grad_w, None, None, None, None, None, None, None, None, None


# ---------------------------------------------------------------------------------------------------------
# 5. Functional API
# ---------------------------------------------------------------------------------------------------------

def grpo_loss(hidden: torch.Tensor, weight: torch.Tensor, completion_ids: torch.Tensor,
              completion_mask: torch.Tensor, advantages: torch.Tensor, *,
              old_logps: torch.Tensor | None = None, ref_logps: torch.Tensor | None = None,
              beta: float = 0.0, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
              loss_type: str = "dapo", max_completion_length: int | None = None,
              temperature: float = 1.0, chunk_size: int | None = None,
              importance_sampling_level: str = "token", with_entropy: bool = False) -> GRPOLossOutput:
    """TRL's GRPO loss from hidden states [B, T, H] and lm_head weight [V, H], never building [B, T, V].

    old_logps None means on-policy (ratio 1, gradient still flows). kl is reported whenever ref_logps is
    given (it enters the loss only when beta > 0). chunk_size = rows per chunk on the torch path.
    importance_sampling_level "sequence" is GSPO: one ratio per completion, exp of its mean log-ratio.
    with_entropy adds the mean entropy of the sampled positions' distributions (from the same pass).
    Truncated completions are left out of the loss (TRL's mask_truncated_completions) by zeroing their
    rows of completion_mask.
    """
    check_loss_args(hidden, weight, completion_ids, completion_mask, advantages, old_logps, ref_logps,
                     beta, epsilon_low, epsilon_high, loss_type, max_completion_length, temperature, chunk_size,
                     importance_sampling_level)
    batch, length = completion_ids.shape
    sequence_level = importance_sampling_level == "sequence"
    spec = _LossSpec(float(beta), float(epsilon_low), float(epsilon_high), float(temperature),
                     _chunk_rows(chunk_size, weight.shape[0]), sequence_level, max(length, 1))
    mask = completion_mask.to(torch.float32)
    weights = _token_weights(mask, loss_type, max_completion_length)
    policy_weights = _policy_weights(mask, weights, sequence_level).reshape(-1)
    weights = weights.reshape(-1)
    flat = dict(
        ids=completion_ids.reshape(-1).long(),
        mask=mask.reshape(-1),
        adv=advantages.to(torch.float32)[:, None].expand(batch, length).reshape(-1),
        old=None if old_logps is None else old_logps.detach().to(torch.float32).reshape(-1),
        ref=None if ref_logps is None else ref_logps.detach().to(torch.float32).reshape(-1),
    )
    wants_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    if not wants_grad:
        with torch.no_grad():
            h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)
            result = _logprobs_and_grads(h2d, weight, flat["ids"], spec.temperature, spec.chunk_rows,
                           need_entropy=with_entropy)
            loss, kl, clip = _loss_from_logps(result.logp, flat["old"], flat["ref"], flat["adv"], weights,
                                              flat["mask"], spec)
        entropy = _masked_mean(result.entropy, flat["mask"]) if with_entropy else None
        return GRPOLossOutput(loss, result.logp.view(batch, length), kl, clip, entropy)
    loss, logps, kl, clip, entropy = _GRPOLossFunction.apply(
        hidden, weight, flat["ids"], flat["mask"], flat["adv"], weights, policy_weights, flat["old"],
        flat["ref"], spec, with_entropy)
    return GRPOLossOutput(loss, logps, kl, clip, entropy if with_entropy else None)


@torch.no_grad()
def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor,
                   temperature: float = 1.0, chunk_size: int | None = None) -> torch.Tensor:
    """Per-token log-probs [B, T] (fp32, no grad) of `ids` under logits hidden·Wᵀ / temperature."""
    check_logprob_args(hidden, weight, ids, temperature, chunk_size)
    h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)
    result = _logprobs_and_grads(h2d, weight, ids.reshape(-1).long(), float(temperature),
                   _chunk_rows(chunk_size, weight.shape[0]))
    return result.logp.view(ids.shape)
