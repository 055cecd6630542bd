"""Fused GRPO loss: from last hidden states and the lm_head weight straight to TRL's GRPO loss, without
ever building the `[B, T, V]` logits.

Read top to bottom (the loss variants and argument checks, run before any compute, are args.py):
1. the output and the chunk size,
2. (the per-token terms, TRL's formulas and their derivatives, are tokens.py / terms.py)
3. the chunked torch pass (CPU and any device without Triton): for each chunk of rows it builds that chunk's
   logits, takes an fp32 log-sum-exp, and, when gradients are wanted, turns the same buffer into the
   gradient w.r.t. the logits and multiplies it back into the hidden / weight gradients,
4. the autograd.Function: the gradients are formed during forward (the loss is a scalar, so backward only
   scales them by the incoming gradient),
5. the functional API `grpo_loss` and `token_logprobs`.

On CUDA (and under `TRITON_INTERPRET=1`) the same pass runs as Triton kernels: see triton_kernels.py.

Math. With z = h·Wᵀ / temperature, logp = z[id] − logsumexp(z). Every policy and KL term depends on the
logits only through logp, so dLoss/dz = g · (onehot(id) − softmax(z)) with g = dLoss/dlogp for that token;
the entropy bonus adds e · dH/dz = −e · p (log p + H) with e = dLoss/dH. Usually g needs only that token's
logp and normalisers known from the mask up front, which lets one pass per chunk produce the log-probs and
the gradients together. Options that look at whole sequences or the whole batch (GSPO's ratio with old
log-probs, VESPO, top-entropy tokens, the off-policy mask, the sampler correction) are the exception: the
log-probs and entropies come first, then the gradients in a second sweep.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch

from .args import check_logprob_args, check_loss_args, check_options
from .terms import LossOptions
from .tokens import Flat, LossSpec, needs_all_rows, spread, token_terms, token_weights

# Rows per chunk on the torch path are chosen so one chunk's fp32 logits stay near this many bytes.
_CHUNK_BYTES = 16 << 20


class GRPOLossOutput(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable w.r.t. hidden (and weight when it requires grad)
    logps: torch.Tensor  # [B, T] fp32 per-token log-probs, detached
    kl: torch.Tensor  # scalar: mean per-token KL(ref || policy) over completion tokens; 0 without ref_logps
    clip_ratio: torch.Tensor  # scalar: share of completion tokens (of sequences, at sequence level) where the
    #                           clip was active (TRL's region)
    entropy: torch.Tensor | None = None  # scalar: mean entropy of logits / T over completion tokens, when asked
    sampler_kl: torch.Tensor | None = None  # k3 KL(sampler || trainer) per token, with the sampler correction
    sampler_capped: torch.Tensor | None = None  # share of tokens whose sampler ratio was truncated or masked
    selected_entropy: torch.Tensor | None = None  # mean entropy of the tokens the policy loss uses
    selected_tokens: torch.Tensor | None = None  # how many tokens that is (top_entropy_quantile selects)


def _chunk_rows(chunk_size: int | None, vocab: int) -> int:
    if chunk_size is not None:
        return chunk_size
    return max(1, _CHUNK_BYTES // (4 * max(vocab, 1)))


# ---------------------------------------------------------------------------------------------------------
# 3. The chunked pass (torch); Triton's version lives in triton_kernels.py
# ---------------------------------------------------------------------------------------------------------

# coef_fn(logp_of_rows, rows, entropy_of_rows) -> (dLoss/dlogp, dLoss/dentropy or None) for those rows
CoefFn = Callable[[torch.Tensor, slice, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]


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
        if entropy is not None:  # need_entropy. H = log S - sum(e log e) / S with e = exp(z - max), S = sum(e)
            e_log_e = sum(torch.special.xlogy(z[:, c:c + _ENTROPY_COLUMNS], z[:, c:c + _ENTROPY_COLUMNS]).sum(1)
                          for c in range(0, vocab, _ENTROPY_COLUMNS))
            entropy[rows] = sum_exp.log().squeeze(1) - e_log_e / sum_exp.squeeze(1)
        if coef_fn is None or not (need_h or need_w):
            continue
        # d sum(coef * logp) / dz = coef / temperature * (onehot(id) - softmax(z)), built in z's buffer.
        coef, ent_coef = coef_fn(logp[rows], rows, None if entropy is None else entropy[rows])
        scale = (coef / temperature).unsqueeze(1)
        if not bool(scale.any()) and (ent_coef is None or not bool(ent_coef.any())):  # nothing flows back
            if grad_h is not None:  # need_h
                grad_h[rows] = 0
            continue
        if ent_coef is None:
            z.mul_(-scale / sum_exp)
        else:  # + ent_coef / T * dH/dz, dH/dz = -p (log p + H), log p = log e - log S, in column slices
            assert entropy is not None  # an entropy coefficient comes with need_entropy
            ent = (ent_coef / temperature).unsqueeze(1)
            log_s = sum_exp.log()
            linear = -(scale + ent * (entropy[rows].unsqueeze(1) - log_s)) / sum_exp
            for c in range(0, vocab, _ENTROPY_COLUMNS):
                part = z[:, c:c + _ENTROPY_COLUMNS]
                e_log_e = torch.special.xlogy(part, part)
                part.mul_(linear).sub_(e_log_e.mul_(ent / sum_exp))
        z.scatter_add_(1, idx, scale)
        if grad_h is not None:  # need_h
            if fp32:
                torch.mm(z, weight, out=grad_h[rows])
            else:
                grad_h[rows] = z.to(weight.dtype) @ weight
        if grad_w is not None:  # need_w
            grad_w.addmm_(z.T, h if fp32 else h.float())
    return _PassResult(logp, entropy, grad_h, grad_w)


def _logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, coef_fn=None, need_h=False, need_w=False,
          need_entropy=False, coefneeds_all_rows=False) -> _PassResult:
    """coefneeds_all_rows: the coefficient of a row depends on other rows' log-probs (GSPO's sequence
    ratio with old log-probs), so the log-probs come first and the gradients in a second sweep; Triton
    works that way anyway, the torch path then rebuilds each chunk's logits once more."""
    wants_grad = coef_fn is not None and (need_h or need_w)
    if _uses_triton(h2d):
        from . import triton_kernels as grpo_loss_triton

        logp, lse, entropy = grpo_loss_triton.logprobs(h2d, weight, ids, temperature)
        if not wants_grad:
            return _PassResult(logp, entropy, None, None)
        coef, ent_coef = coef_fn(logp, slice(None), entropy)
        grad_h, grad_w = grpo_loss_triton.grads(h2d, weight, ids, lse, coef, temperature, need_h, need_w,
                                                ent_coef, entropy)
        return _PassResult(logp, entropy, grad_h, grad_w)
    if wants_grad and coefneeds_all_rows:
        first = _torch_logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, need_entropy=need_entropy)
        coef, ent_coef = coef_fn(first.logp, slice(None), first.entropy)
        second = _torch_logprobs_and_grads(
            h2d, weight, ids, temperature, chunk_rows,
            lambda _logp, rows, _entropy: (coef[rows], None if ent_coef is None else ent_coef[rows]),
            need_h, need_w, need_entropy=ent_coef is not None)
        return _PassResult(first.logp, first.entropy, second.grad_h, second.grad_w)
    return _torch_logprobs_and_grads(h2d, weight, ids, temperature, chunk_rows, coef_fn, need_h, need_w, need_entropy)


def _loss_and_metrics(logp, entropy, flat: Flat, spec: LossSpec) -> tuple[torch.Tensor, dict]:
    """Loss value and the metrics from the (flat, detached) log-probs and entropies."""
    terms = token_terms(logp, entropy, flat, spec)
    mask = flat.mask
    on = mask != 0
    zero = torch.zeros((), dtype=torch.float32, device=logp.device)
    # where(), not a product: a padding token's terms may be inf, and inf * 0 would poison the sum.
    loss = torch.where(on, terms.loss * flat.weights, zero).sum()
    if terms.entropy_coef is not None:
        loss = loss + (terms.entropy_coef * torch.where(on, entropy, zero)).sum()
    count = mask.sum().clamp(min=1.0)
    if spec.sequence_level:  # one ratio per sequence: TRL counts clipped sequences over all sequences
        clip_ratio = terms.clipped.view(-1, spec.length)[:, 0].float().mean()
    else:
        clip_ratio = torch.where(on, terms.clipped.float() * mask, zero).sum() / count
    metrics = dict(kl=zero if terms.kl is None else torch.where(on, terms.kl * mask, zero).sum() / count,
                   clip_ratio=clip_ratio)
    correction = terms.extra.correction
    if correction is not None:  # the sampler/trainer mismatch: k3 KL(sampler || trainer), share capped
        d = correction.log_ratio
        metrics["sampler_kl"] = torch.where(on, torch.exp(d) - d - 1.0, zero).sum() / count
        metrics["sampler_capped"] = torch.where(on, correction.capped.float(), zero).sum() / count
    if entropy is not None:
        chosen = mask if terms.extra.entropy_mask is None else mask * terms.extra.entropy_mask
        metrics["selected_tokens"] = chosen.sum()
        metrics["selected_entropy"] = (torch.where(on, entropy, zero) * chosen).sum() / chosen.sum().clamp(min=1.0)
    return loss, metrics


def _masked_mean(values: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    if values is None:
        return torch.full((), float("nan"), device=mask.device)
    return torch.where(mask != 0, values, torch.zeros_like(values)).sum() / mask.sum().clamp(min=1.0)


# ---------------------------------------------------------------------------------------------------------
# 4. autograd.Function
# ---------------------------------------------------------------------------------------------------------

class _GRPOLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, ids, flat: Flat, spec: LossSpec, need_entropy: bool, sink: dict):
        h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)

        def coef_fn(logp_rows: torch.Tensor, rows: slice, entropy_rows: torch.Tensor | None):
            terms = token_terms(logp_rows, entropy_rows, flat, spec, rows)
            return terms.coef, terms.entropy_coef

        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        result = _logprobs_and_grads(h2d, weight, ids, spec.temperature, spec.chunk_rows, coef_fn, need_h, need_w,
                                     need_entropy, coefneeds_all_rows=needs_all_rows(spec, flat))
        loss, metrics = _loss_and_metrics(result.logp, result.entropy, flat, spec)
        sink.update(metrics, entropy=_masked_mean(result.entropy, flat.mask))
        # Kept as attributes, not saved tensors, so backward can hand them over without a copy.
        ctx.grads = (result.grad_h, result.grad_w)
        ctx.meta = (hidden.shape, hidden.dtype, weight.dtype)
        logps = result.logp.view(hidden.shape[:2])
        ctx.mark_non_differentiable(logps)
        return loss, logps

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
        return grad_h, grad_w, None, None, None, None, None


# ---------------------------------------------------------------------------------------------------------
# 5. Functional API
# ---------------------------------------------------------------------------------------------------------

def grpo_loss(hidden: torch.Tensor, weight: torch.Tensor, completion_ids: torch.Tensor,
              completion_mask: torch.Tensor, advantages: torch.Tensor, *,
              old_logps: torch.Tensor | None = None, ref_logps: torch.Tensor | None = None,
              beta: float = 0.0, epsilon_low: float = 0.2, epsilon_high: float = 0.2,
              loss_type: str = "dapo", max_completion_length: int | None = None,
              temperature: float = 1.0, chunk_size: int | None = None,
              importance_sampling_level: str = "token", with_entropy: bool = False,
              sampling_logps: torch.Tensor | None = None, options: LossOptions | None = None) -> GRPOLossOutput:
    """TRL's GRPO loss from hidden states [B, T, H] and lm_head weight [V, H], never building [B, T, V].

    old_logps None means on-policy (ratio 1, gradient still flows). kl is reported whenever ref_logps is
    given (it enters the loss only when beta > 0). chunk_size = rows per chunk on the torch path.
    importance_sampling_level "sequence" is GSPO: one ratio per completion, exp of its mean log-ratio.
    with_entropy adds the mean entropy of the sampled positions' distributions (from the same pass).
    Truncated completions are left out of the loss (TRL's mask_truncated_completions) by zeroing their
    rows of completion_mask. sampling_logps: the sampler's own log-probs of the completion (the off-policy
    mask and the sampler correction in `options` use them); options: the loss options beyond clip and KL.
    """
    options = options or LossOptions()
    check_loss_args(hidden, weight, completion_ids, completion_mask, advantages, old_logps, ref_logps,
                     beta, epsilon_low, epsilon_high, loss_type, max_completion_length, temperature, chunk_size,
                     importance_sampling_level)
    check_options(options, loss_type, sampling_logps, tuple(completion_ids.shape))
    batch, length = completion_ids.shape
    sequence_level = importance_sampling_level == "sequence"
    spec = LossSpec(float(beta), float(epsilon_low), float(epsilon_high), float(temperature),
                     _chunk_rows(chunk_size, weight.shape[0]), sequence_level, max(length, 1), loss_type, options)
    mask = completion_mask.to(torch.float32)
    weights = token_weights(mask, loss_type, max_completion_length).reshape(-1)
    mask = mask.reshape(-1)
    flat = Flat(mask, advantages.to(torch.float32)[:, None].expand(batch, length).reshape(-1), weights,
                 spread(weights, mask, spec.length) if sequence_level else weights,
                 mask / mask.sum().clamp(min=1.0),
                 *(None if t is None else t.detach().to(torch.float32).reshape(-1)
                   for t in (old_logps, ref_logps, sampling_logps)))
    ids = completion_ids.reshape(-1).long()
    need_entropy = with_entropy or options.needs_entropy()
    sink: dict = {}
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        loss, logps = _GRPOLossFunction.apply(hidden, weight, ids, flat, spec, need_entropy, sink)
    else:
        with torch.no_grad():
            h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)
            result = _logprobs_and_grads(h2d, weight, ids, spec.temperature, spec.chunk_rows,
                                         need_entropy=need_entropy)
            loss, metrics = _loss_and_metrics(result.logp, result.entropy, flat, spec)
        sink.update(metrics, entropy=_masked_mean(result.entropy, mask))
        logps = result.logp.view(batch, length)
    return GRPOLossOutput(loss, logps, sink["kl"], sink["clip_ratio"], sink["entropy"] if with_entropy else None,
                          sink.get("sampler_kl"), sink.get("sampler_capped"), sink.get("selected_entropy"),
                          sink.get("selected_tokens"))


@torch.no_grad()
def token_logprobs(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor,
                   temperature: float = 1.0, chunk_size: int | None = None) -> torch.Tensor:
    """Per-token log-probs [B, T] (fp32, no grad) of `ids` under logits hidden·Wᵀ / temperature."""
    check_logprob_args(hidden, weight, ids, temperature, chunk_size)
    h2d = hidden.reshape(-1, hidden.shape[-1]).to(weight.dtype)
    result = _logprobs_and_grads(h2d, weight, ids.reshape(-1).long(), float(temperature),
                   _chunk_rows(chunk_size, weight.shape[0]))
    return result.logp.view(ids.shape)
