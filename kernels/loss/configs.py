"""Autotune configs of the fused GRPO loss's Triton kernels, and which of them each NVIDIA card can launch.

A config a card cannot launch (more shared memory per block than the card allows, too many registers) makes
Triton's autotuner skip it; when no config fits, the kernel cannot run at all. So the engine only offers the
autotuner the configs that fit the card it runs on (`prune`, called by the autotuner before benchmarking),
and tests/test_kernel_compile.py cross-compiles every config for every architecture below to hold this table
to what Triton and ptxas really produce.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import triton

from .compiled import COMPILED

ARCHS = (75, 80, 86, 89, 90)
# Shared memory one block may use (the opt-in maximum), bytes: Turing 64 KiB, A100 163 KiB, RTX 30xx/40xx
# 99 KiB, H100 227 KiB (CUDA programming guide, compute capabilities table).
MAX_SHARED = {75: 64 << 10, 80: 163 << 10, 86: 99 << 10, 89: 99 << 10, 90: 227 << 10}
MAX_REGS_PER_THREAD = 255
REGS_PER_SM = 64 << 10
_REG_ALLOC_UNIT = 8  # registers are given to threads in multiples of 8 (per-warp granularity 256)
COMPILED_MODULE = Path(__file__).with_name("compiled.py")

# (BLOCK_N, BLOCK_V, BLOCK_K, num_warps, num_stages)
_CONFIGS = [(64, 128, 64, 4, 3), (128, 128, 32, 8, 3), (64, 256, 32, 8, 3), (128, 64, 64, 4, 4), (32, 128, 64, 4, 4)]
# fp32 inputs take twice the shared memory per tile: every config above needs 100-144 KiB in the gradient
# kernel, over the 99 KiB of sm_86/89 (RTX 30xx/40xx), where fp32 then had no config at all. This smaller,
# two-stage one needs 32 KiB there (it spills a few hundred bytes at 255 registers, but it runs).
_FP32_CONFIGS = [(64, 64, 32, 4, 2)]


def all_configs(dtype: str | None = None) -> list[triton.Config]:
    """The autotune configs for inputs of `dtype` (bf16/fp16/fp32); None: every config of every dtype."""
    extra = _FP32_CONFIGS if dtype in (None, "fp32") else []
    return [triton.Config({"BLOCK_N": bn, "BLOCK_V": bv, "BLOCK_K": bk}, num_warps=w, num_stages=s)
            for bn, bv, bk, w, s in _CONFIGS + extra]


def config_name(config: triton.Config) -> str:
    k = config.kwargs
    return f"{k['BLOCK_N']}x{k['BLOCK_V']}x{k['BLOCK_K']} w{config.num_warps} s{config.num_stages}"


def fits(arch: int, shared_bytes: int, registers: int, num_warps: int) -> bool:
    """Whether a compiled kernel with these needs can be launched on compute capability `arch` (e.g. 86)."""
    regs = -(-registers // _REG_ALLOC_UNIT) * _REG_ALLOC_UNIT
    return (shared_bytes <= MAX_SHARED[arch] and registers <= MAX_REGS_PER_THREAD
            and regs * 32 * num_warps <= REGS_PER_SM)


def engine_constexprs(kernel: str, dtype: str) -> dict[str, Any]:
    """The compile-time arguments the engine launches `kernel` with for inputs of `dtype` (bf16/fp16/fp32)."""
    out: dict[str, Any] = {"PRECISION": "ieee"}
    if kernel == "grad":
        # HAS_ENTROPY on: the heavier variant (the entropy bonus's extra loads and math); a config that
        # launches with it launches without it too.
        out.update(NEED_H=True, NEED_W=False, FILTER_EPS=FILTER_EPS.get(dtype, 0.0), HAS_ENTROPY=True)
    return out


# Probability mass a row may lose to skipped gradient tiles (16-bit inputs only): bf16 resolution, 2^-8.
FILTER_EPS = {"bf16": 2.0 ** -8, "fp16": 2.0 ** -8}


_DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


def _known_arch(arch: int) -> int:
    """The table's architecture that compiles like `arch`: the newest one not newer than it (sm_87 -> 86)."""
    return max((a for a in ARCHS if a <= arch), default=ARCHS[0])


def launchable(config: triton.Config, kernel: str, dtype: str, arch: int, max_shared: int | None = None) -> bool:
    """Whether `config` of `kernel` compiled for `dtype` fits `arch`, by the cross-compiled table
    (compiled.py). `max_shared`: the card's own per-block limit, where the driver tells it."""
    known = _known_arch(arch)
    shared, regs, _spills = COMPILED[(kernel, dtype, known, config_name(config))]
    limit = MAX_SHARED[known] if max_shared is None else max_shared
    return shared <= limit and fits(known, shared, regs, config.num_warps)


def configs_for(kernel: str, dtype: str, arch: int, max_shared: int | None = None) -> list[triton.Config]:
    """The configs the engine lets the autotuner try for `kernel` on `arch` with inputs of `dtype`: those the
    card can launch, and of those only the ones that spill no registers, unless every one of them spills."""
    fitting = [c for c in all_configs(dtype) if launchable(c, kernel, dtype, arch, max_shared)]
    known = _known_arch(arch)
    unspilled = [c for c in fitting if COMPILED[(kernel, dtype, known, config_name(c))][2] == 0]
    return unspilled or fitting


def prune(configs: list[triton.Config], kernel: str, dtype: torch.dtype, arch: int,
          max_shared: int | None = None) -> list[triton.Config]:
    """The autotuner's early prune: drop the configs this card cannot launch. If the table knows none that
    fits (an architecture it has not seen), the configs are left as they are and Triton skips failures."""
    names = {config_name(c) for c in configs_for(kernel, _DTYPE_NAMES[dtype], arch, max_shared)}
    kept = [c for c in configs if config_name(c) in names]
    return kept or configs
