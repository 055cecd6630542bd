"""Triton kernels for the fused GRPO loss (CUDA; CPU tensors under TRITON_INTERPRET=1 in tests).

Two kernels, both tiling rows x vocabulary and computing each logits tile on the fly from hidden and
weight (tl.dot over H blocks, fp32 accumulation), so no logits ever reach memory:

- `_logprob_kernel`, one program per block of rows: walks the vocabulary block by block keeping an online
  max / sum-exp / sum of exp·(z - max) per row and picks out the chosen token's logit -> log-sum-exp,
  log-prob and entropy per row.
- `_grad_kernel`, one program per (row block, vocab block): rebuilds its logits tile, forms the gradient
  w.r.t. those logits, coef / T * (onehot(id) - softmax), and multiplies it straight back into the hidden
  gradient (tile @ W) and the weight gradient (tileᵀ @ h), atomically added into fp32 buffers.

Peak extra memory is the two fp32 gradient buffers; the [rows, V] logits exist one tile at a time in
registers. functional.py computes the per-row coefficient dLoss/dlogp between the two kernels.
"""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from . import configs as grpo_loss_configs

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def _configs() -> list[triton.Config]:
    if _INTERPRET:  # the interpreter is slow: one small config, nothing to tune
        return [triton.Config({"BLOCK_N": 16, "BLOCK_V": 32, "BLOCK_K": 16}, num_warps=1)]
    return grpo_loss_configs.all_configs()


def _pruner(kernel: str) -> dict:
    """Only the configs the GPU at hand can launch reach the autotuner (configs.py, held by tests)."""
    if _INTERPRET:
        return {}

    def prune(configs, named_args, **kwargs):
        h = named_args["h_ptr"]
        index = h.device.index if h.device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        limit = triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]
        return grpo_loss_configs.prune(configs, kernel, h.dtype, 10 * major + minor, limit)

    return {"early_config_prune": prune}


@triton.jit
def _logits_tile(h_ptr, w_ptr, rows, cols, row_ok, col_ok, H, stride_h, stride_w, inv_temp,
                 BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
                 PRECISION: tl.constexpr):
    """[BLOCK_N, BLOCK_V] fp32 tile of (h @ Wᵀ) / temperature."""
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < H
        h = tl.load(h_ptr + rows[:, None] * stride_h + ks[None, :], mask=row_ok[:, None] & k_ok[None, :],
                    other=0.0)
        w = tl.load(w_ptr + cols[:, None] * stride_w + ks[None, :], mask=col_ok[:, None] & k_ok[None, :],
                    other=0.0)
        acc = tl.dot(h, tl.trans(w), acc, input_precision=PRECISION)
    return acc * inv_temp


@triton.autotune(configs=_configs(), key=["H", "V"], prune_configs_by=_pruner("logprob"))
@triton.jit
def _logprob_kernel(h_ptr, w_ptr, ids_ptr, lse_ptr, logp_ptr, entropy_ptr, N, V, H, stride_h, stride_w,
                    inv_temp,
                    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
                    PRECISION: tl.constexpr):
    rows = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    row_ok = rows < N
    ids = tl.load(ids_ptr + rows, mask=row_ok, other=0)
    run_max = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros((BLOCK_N,), dtype=tl.float32)
    run_ez = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum of exp(z - run_max) * (z - run_max)
    picked = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        cols = (v0 + tl.arange(0, BLOCK_V)).to(tl.int64)
        col_ok = cols < V
        z = _logits_tile(h_ptr, w_ptr, rows, cols, row_ok, col_ok, H, stride_h, stride_w, inv_temp,
                         BLOCK_N, BLOCK_V, BLOCK_K, PRECISION)
        z = tl.where(col_ok[None, :], z, float("-inf"))
        picked += tl.sum(tl.where(cols[None, :] == ids[:, None], z, 0.0), axis=1)
        new_max = tl.maximum(run_max, tl.max(z, axis=1))
        # Rescaling to the new max: exp(z - m') (z - m') summed over old columns is
        # exp(m - m') * (run_ez + (m - m') * run_sum); the first block has nothing to rescale.
        shift = tl.where(run_max == float("-inf"), 0.0, run_max - new_max)
        scale = tl.exp(shift)
        d = z - new_max[:, None]
        e = tl.where(col_ok[None, :], tl.exp(d), 0.0)
        run_ez = scale * (run_ez + shift * run_sum) + tl.sum(tl.where(col_ok[None, :], e * d, 0.0), axis=1)
        run_sum = run_sum * scale + tl.sum(e, axis=1)
        run_max = new_max
    lse = run_max + tl.log(run_sum)
    tl.store(lse_ptr + rows, lse, mask=row_ok)
    tl.store(logp_ptr + rows, picked - lse, mask=row_ok)
    # H = -sum p log p = log S - sum(e (z - max)) / S
    tl.store(entropy_ptr + rows, tl.log(run_sum) - run_ez / run_sum, mask=row_ok)


@triton.autotune(configs=_configs(), key=["H", "V"], reset_to_zero=["grad_h_ptr", "grad_w_ptr"],
                 prune_configs_by=_pruner("grad"))
@triton.jit
def _grad_kernel(h_ptr, w_ptr, ids_ptr, lse_ptr, coef_ptr, grad_h_ptr, grad_w_ptr, N, V, H, stride_h,
                 stride_w, inv_temp, ent_coef_ptr, entropy_ptr, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
                 BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, NEED_H: tl.constexpr, NEED_W: tl.constexpr,
                 FILTER_EPS: tl.constexpr, HAS_ENTROPY: tl.constexpr):
    rows = (tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    cols = (tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)).to(tl.int64)
    row_ok = rows < N
    col_ok = cols < V
    # coef is 0 for padding tokens; a block of rows with nothing to contribute skips all the work.
    scale = tl.load(coef_ptr + rows, mask=row_ok, other=0.0) * inv_temp
    live = tl.abs(scale)
    if HAS_ENTROPY:  # the entropy bonus: dLoss/dH per row, and H itself
        ent_scale = tl.load(ent_coef_ptr + rows, mask=row_ok, other=0.0) * inv_temp
        ent_h = tl.load(entropy_ptr + rows, mask=row_ok, other=0.0)
        live += tl.abs(ent_scale)
    if tl.max(live, axis=0) > 0:
        ids = tl.load(ids_ptr + rows, mask=row_ok, other=0)
        lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
        z = _logits_tile(h_ptr, w_ptr, rows, cols, row_ok, col_ok, H, stride_h, stride_w, inv_temp,
                         BLOCK_N, BLOCK_V, BLOCK_K, PRECISION)
        onehot = tl.where(cols[None, :] == ids[:, None], 1.0, 0.0)
        dlogp_dz = tl.where(row_ok[:, None] & col_ok[None, :], onehot - tl.exp(z - lse[:, None]), 0.0)
        # 16-bit inputs only: a tile where every row's |onehot - p| sums below FILTER_EPS * BLOCK_V / V
        # is skipped, saving its matmuls and atomics. Summed over the ceil(V / BLOCK_V) tiles, a row loses
        # less than FILTER_EPS * (1 + BLOCK_V / V) of probability mass, whatever its entropy (a per-entry
        # threshold dropped up to 1.8% on SmolLM2). For fp32 FILTER_EPS is 0 and every tile counts.
        if tl.max(tl.sum(tl.abs(dlogp_dz), axis=1), axis=0) >= FILTER_EPS * BLOCK_V / V:
            dz = scale[:, None] * dlogp_dz
            if HAS_ENTROPY:  # + dLoss/dH * dH/dz, dH/dz = -p (log p + H) with log p = z - lse
                log_p = z - lse[:, None]
                dz += tl.where(row_ok[:, None] & col_ok[None, :],
                               -ent_scale[:, None] * tl.exp(log_p) * (log_p + ent_h[:, None]), 0.0)
            dz = dz.to(h_ptr.dtype.element_ty)  # dot in the input dtype
            for k0 in range(0, H, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                k_ok = ks < H
                if NEED_H:
                    w = tl.load(w_ptr + cols[:, None] * stride_w + ks[None, :],
                                mask=col_ok[:, None] & k_ok[None, :], other=0.0)
                    part_h = tl.dot(dz, w, input_precision=PRECISION)
                    tl.atomic_add(grad_h_ptr + rows[:, None] * H + ks[None, :], part_h,
                                  mask=row_ok[:, None] & k_ok[None, :])
                if NEED_W:
                    h = tl.load(h_ptr + rows[:, None] * stride_h + ks[None, :],
                                mask=row_ok[:, None] & k_ok[None, :], other=0.0)
                    part_w = tl.dot(tl.trans(dz), h, input_precision=PRECISION)
                    tl.atomic_add(grad_w_ptr + cols[:, None] * H + ks[None, :], part_w,
                                  mask=col_ok[:, None] & k_ok[None, :])


def _precision(dtype: torch.dtype) -> str:
    """fp32 dots follow torch's matmul setting (TF32 only where the user allowed it); 16-bit ignore it."""
    if dtype == torch.float32 and not _INTERPRET and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


# Probability mass a row may lose to skipped gradient tiles: bf16 / fp16 resolution; none for fp32.
_FILTER_EPS = {torch.bfloat16: grpo_loss_configs.FILTER_EPS["bf16"],
               torch.float16: grpo_loss_configs.FILTER_EPS["fp16"]}


def logprobs(h2d: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, temperature: float):
    """(logp, lse, entropy): fp32 [N] log-probs of ids, log-sum-exp and entropy of each row's
    softmax(logits / temperature)."""
    h2d, weight, ids = h2d.contiguous(), weight.contiguous(), ids.contiguous()
    n_rows, hidden = h2d.shape
    vocab = weight.shape[0]
    logp = torch.empty(n_rows, dtype=torch.float32, device=h2d.device)
    lse, entropy = torch.empty_like(logp), torch.empty_like(logp)
    if n_rows:
        def grid(meta):
            return (triton.cdiv(n_rows, meta["BLOCK_N"]),)

        _logprob_kernel[grid](h2d, weight, ids, lse, logp, entropy, n_rows, vocab, hidden, h2d.stride(0),
                              weight.stride(0), 1.0 / temperature, PRECISION=_precision(h2d.dtype))
    return logp, lse, entropy


def grads(h2d, weight, ids, lse, coef, temperature, need_h: bool, need_w: bool, ent_coef=None, entropy=None):
    """Gradients of sum(coef * logp) (+ sum(ent_coef * entropy), the entropy bonus, when given) w.r.t. h2d
    and weight (None where not needed), in their dtypes."""
    h2d, weight, ids = h2d.contiguous(), weight.contiguous(), ids.contiguous()
    n_rows, hidden = h2d.shape
    vocab = weight.shape[0]
    # Dummy 1-element buffers stand in for gradients nobody wants (the kernel never touches them).
    grad_h = torch.zeros((n_rows, hidden) if need_h else (1,), dtype=torch.float32, device=h2d.device)
    grad_w = torch.zeros((vocab, hidden) if need_w else (1,), dtype=torch.float32, device=h2d.device)
    if n_rows:
        def grid(meta):
            return triton.cdiv(n_rows, meta["BLOCK_N"]), triton.cdiv(vocab, meta["BLOCK_V"])

        has_entropy = ent_coef is not None
        ent_coef = ent_coef.contiguous().float() if has_entropy else lse  # lse: a stand-in never read
        entropy = entropy.contiguous().float() if has_entropy else lse
        # With the entropy bonus no tile is skipped: its gradient is not bounded by the tile filter's test.
        _grad_kernel[grid](h2d, weight, ids, lse, coef.contiguous().float(), grad_h, grad_w, n_rows, vocab,
                           hidden, h2d.stride(0), weight.stride(0), 1.0 / temperature, ent_coef, entropy,
                           PRECISION=_precision(h2d.dtype), NEED_H=need_h, NEED_W=need_w,
                           FILTER_EPS=0.0 if has_entropy else _FILTER_EPS.get(h2d.dtype, 0.0),
                           HAS_ENTROPY=has_entropy)
    return (grad_h.to(h2d.dtype) if need_h else None), (grad_w.to(weight.dtype) if need_w else None)
