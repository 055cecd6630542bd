"""Fused GRPO loss: from last hidden states and the lm_head weight straight to TRL's GRPO loss, without
ever building the `[B, T, V]` logits.

Read top to bottom:
1. the loss variants and argument checks (a bad call fails before any compute),
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
produce the log-probs and the gradients together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

# How each loss type spreads the token losses into one number: the weight of a token is mask / normaliser.
# grpo: mean over each sequence's tokens, then mean over sequences; bnpo: mean over all tokens;
# dr_grpo: sum / (B · max_completion_length); dapo: sum / number of completion tokens.
LOSS_TYPES = {
    "grpo": "per-sequence mean, then mean over sequences",
    "bnpo": "mean over all completion tokens",
    "dr_grpo": "sum / (batch size * max_completion_length)",
    "dapo": "sum / number of completion tokens",
}

# Rows per chunk on the torch path are chosen so one chunk's fp32 logits stay near this many bytes.
_CHUNK_BYTES = 16 << 20


class GRPOLossOutput(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable w.r.t. hidden (and weight when it requires grad)
    logps: torch.Tensor  # [B, T] fp32 per-token log-probs, detached
    kl: torch.Tensor  # scalar: mean per-token KL(ref || policy) over completion tokens; 0 without ref_logps
    clip_ratio: torch.Tensor  # scalar: fraction of completion tokens where the clip was active (TRL's region)


@dataclass(frozen=True)
class _LossSpec:
    beta: float
    epsilon_low: float
    epsilon_high: float
    temperature: float
    chunk_rows: int


# ---------------------------------------------------------------------------------------------------------
# 1. Argument checks
# ---------------------------------------------------------------------------------------------------------

def _check_logprob_args(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor,
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


def _check_loss_args(hidden, weight, ids, mask, advantages, old_logps, ref_logps, beta, epsilon_low,
                     epsilon_high, loss_type, max_completion_length, temperature, chunk_size) -> None:
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {sorted(LOSS_TYPES)}")
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length < 1):
        raise ValueError("loss_type 'dr_grpo' divides by batch size * max_completion_length: "
                         "pass max_completion_length (a positive int)")
    _check_logprob_args(hidden, weight, ids, temperature, chunk_size)
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


def _chunk_rows(chunk_size: int | None, vocab: int) -> int:
    if chunk_size is not None:
        return chunk_size
    return max(1, _CHUNK_BYTES // (4 * max(vocab, 1)))


# ---------------------------------------------------------------------------------------------------------
# 2. Per-token GRPO terms (TRL's GRPOTrainer formula)
# ---------------------------------------------------------------------------------------------------------

class _TokenTerms(NamedTuple):
    loss: torch.Tensor  # per-token loss before masking and normalising
    dloss: torch.Tensor  # its derivative w.r.t. the token's log-prob
    clipped: torch.Tensor  # bool: the clipped branch won the min (no policy gradient), as TRL counts it
    kl: torch.Tensor | None  # per-token k3 KL estimate to the reference, when ref log-probs are given


def _token_terms(logp, old, ref, adv, spec: _LossSpec) -> _TokenTerms:
    # ratio = exp(logp - old); on-policy (old None) it is exactly 1 with d ratio / d logp = 1.
    ratio = torch.ones_like(logp) if old is None else torch.exp(logp - old)
    lo, hi = 1.0 - spec.epsilon_low, 1.0 + spec.epsilon_high
    loss = -torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv)
    # The clipped term is strictly the smaller one exactly when (ratio > hi, A > 0) or (ratio < lo, A < 0);
    # there it is constant in logp. Everywhere else the unclipped term's derivative -A * ratio applies
    # (at a tie both branches have that same derivative).
    clipped = ((ratio < lo) & (adv < 0)) | ((ratio > hi) & (adv > 0))
    dloss = torch.where(clipped, torch.zeros_like(ratio), -adv * ratio)
    kl = None
    if ref is not None:
        diff = ref - logp
        kl = torch.exp(diff) - diff - 1.0
        if spec.beta != 0.0:
            loss = loss + spec.beta * kl
            dloss = dloss + spec.beta * (1.0 - torch.exp(diff))
    return _TokenTerms(loss, dloss, clipped, kl)


def _token_weights(mask: torch.Tensor, loss_type: str, max_completion_length: int | None) -> torch.Tensor:
    """Weight of each token in the final loss: mask / the loss type's normaliser."""
    batch = mask.shape[0]
    if loss_type == "grpo":
        return mask / (batch * mask.sum(-1, keepdim=True).clamp(min=1.0))
    if loss_type == "dr_grpo":
        return mask / float(batch * max_completion_length)
    return mask / mask.sum().clamp(min=1.0)  # bnpo and dapo: same within one batch


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


def _torch_logprobs_and_grads(h2d: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, temperature: float,
                              chunk_rows: int, coef_fn: CoefFn | None = None, need_h: bool = False,
                              need_w: bool = False):
    """Log-probs of `ids` for every row and, with coef_fn, the gradients of sum(coef * logp)."""
    n_rows, vocab = h2d.shape[0], weight.shape[0]
    fp32 = weight.dtype == torch.float32
    logp = torch.empty(n_rows, dtype=torch.float32, device=h2d.device)
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
    return logp, grad_h, grad_w


def _logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, coef_fn=None, need_h=False, need_w=False):
    if _uses_triton(h2d):
        from . import grpo_loss_triton

        logp, lse = grpo_loss_triton.logprobs(h2d, weight, ids, temperature)
        if coef_fn is None or not (need_h or need_w):
            return logp, None, None
        coef = coef_fn(logp, slice(None))
        grad_h, grad_w = grpo_loss_triton.grads(h2d, weight, ids, lse, coef, temperature, need_h, need_w)
        return logp, grad_h, grad_w
    return _torch_logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, coef_fn, need_h, need_w)


def _loss_from_logps(logp, old, ref, adv, weights, mask, spec):
    """Loss value and the two metrics from the (flat, detached) log-probs."""
    terms = _token_terms(logp, old, ref, adv, spec)
    on = mask != 0
    zero = torch.zeros((), dtype=torch.float32, device=logp.device)
    # where(), not a product: a padding token's terms may be inf, and inf * 0 would poison the sum.
    loss = torch.where(on, terms.loss * weights, zero).sum()
    count = mask.sum().clamp(min=1.0)
    clip_ratio = torch.where(on, terms.clipped.float() * mask, zero).sum() / count
    kl = zero if terms.kl is None else torch.where(on, terms.kl * mask, zero).sum() / count
    return loss, kl, clip_ratio


# ---------------------------------------------------------------------------------------------------------
# 4. autograd.Function
# ---------------------------------------------------------------------------------------------------------

class _GRPOLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, ids, mask, adv, weights, old, ref, spec: _LossSpec):
        h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)

        def coef_fn(logp_rows: torch.Tensor, rows: slice) -> torch.Tensor:
            terms = _token_terms(logp_rows, None if old is None else old[rows],
                                 None if ref is None else ref[rows], adv[rows], spec)
            return torch.where(mask[rows] != 0, terms.dloss * weights[rows], torch.zeros_like(logp_rows))

        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        logp, grad_h, grad_w = _logprobs_and_grads(h2d, weight, ids, spec.temperature, spec.chunk_rows,
                                     coef_fn, need_h, need_w)
        loss, kl, clip_ratio = _loss_from_logps(logp, old, ref, adv, weights, mask, spec)
        # Kept as attributes, not saved tensors, so backward can hand them over without a copy.
        ctx.grads = (grad_h, grad_w)
        ctx.meta = (hidden.shape, hidden.dtype, weight.dtype)
        logps = logp.view(hidden.shape[:2])
        ctx.mark_non_differentiable(logps, kl, clip_ratio)
        return loss, logps, kl, clip_ratio

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
        return grad_h, grad_w, None, None, None, None, None, None, None


# ---------------------------------------------------------------------------------------------------------
# 5. Functional API
# ---------------------------------------------------------------------------------------------------------

def grpo_loss(hidden: torch.Tensor, weight: torch.Tensor, completion_ids: torch.Tensor,
              completion_mask: torch.Tensor, advantages: torch.Tensor, *,
              old_logps: torch.Tensor | None = None, ref_logps: torch.Tensor | None = None,
              beta: float = 0.0, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
              loss_type: str = "dapo", max_completion_length: int | None = None,
              temperature: float = 1.0, chunk_size: int | None = None) -> GRPOLossOutput:
    """TRL's GRPO loss from hidden states [B, T, H] and lm_head weight [V, H], never building [B, T, V].

    old_logps None means on-policy (ratio 1, gradient still flows). kl is reported whenever ref_logps is
    given (it enters the loss only when beta > 0). chunk_size = rows per chunk on the torch path.
    """
    _check_loss_args(hidden, weight, completion_ids, completion_mask, advantages, old_logps, ref_logps,
                     beta, epsilon_low, epsilon_high, loss_type, max_completion_length, temperature, chunk_size)
    spec = _LossSpec(float(beta), float(epsilon_low), float(epsilon_high), float(temperature),
                     _chunk_rows(chunk_size, weight.shape[0]))
    batch, length = completion_ids.shape
    mask = completion_mask.to(torch.float32)
    weights = _token_weights(mask, loss_type, max_completion_length).reshape(-1)
    flat = dict(
        ids=completion_ids.reshape(-1).long(),
        mask=mask.reshape(-1),
        adv=advantages.to(torch.float32)[:, None].expand(batch, length).reshape(-1),
        weights=weights,
        old=None if old_logps is None else old_logps.detach().to(torch.float32).reshape(-1),
        ref=None if ref_logps is None else ref_logps.detach().to(torch.float32).reshape(-1),
    )
    wants_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    if not wants_grad:
        with torch.no_grad():
            h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)
            logp, _, _ = _logprobs_and_grads(h2d, weight, flat["ids"], spec.temperature, spec.chunk_rows)
            loss, kl, clip = _loss_from_logps(logp, flat["old"], flat["ref"], flat["adv"], weights,
                                              flat["mask"], spec)
        return GRPOLossOutput(loss, logp.view(batch, length), kl, clip)
    out = _GRPOLossFunction.apply(hidden, weight, flat["ids"], flat["mask"], flat["adv"], weights,
                                  flat["old"], flat["ref"], spec)
    return GRPOLossOutput(*out)


@torch.no_grad()
def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor,
                   temperature: float = 1.0, chunk_size: int | None = None) -> torch.Tensor:
    """Per-token log-probs [B, T] (fp32, no grad) of `ids` under logits hidden·Wᵀ / temperature."""
    _check_logprob_args(hidden, weight, ids, temperature, chunk_size)
    h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)
    logp, _, _ = _logprobs_and_grads(h2d, weight, ids.reshape(-1).long(), float(temperature),
                       _chunk_rows(chunk_size, weight.shape[0]))
    return logp.view(ids.shape)
