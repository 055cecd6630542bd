"""Choices the engine makes from the GPU it runs on: the compute dtype for `dtype: auto`, and whether
`offload_activations: auto` turns offloading on.

bf16 is picked only where the GPU computes it natively (compute capability >= 8.0, Ampere and newer):
`torch.cuda.is_bf16_supported()` is also True on sm_70/75 (V100, T4, RTX 20xx), which only emulate bf16 and
where Triton has no bf16 tensor-core path, so those get float16.

Offloading under `auto` turns on when the plan *without* offloading would not fit this process's GPU. The
budget is what this process could use for the whole run: the device's free memory (torch's view of the device
it trains on, so CUDA_VISIBLE_DEVICES is honoured) plus what this process already holds (weights loaded by
then), plus the CUDA context it already created, which the estimate counts again.
"""
from __future__ import annotations

import torch

from grpo_studio.engine.common.config import TrainConfig

BF16_MIN_CAPABILITY = (8, 0)


def native_bf16(device: torch.device) -> bool:
    """True when `device` computes bf16 in hardware (CUDA compute capability >= 8.0)."""
    if device.type != "cuda":
        return False
    return tuple(torch.cuda.get_device_capability(device)) >= BF16_MIN_CAPABILITY


def auto_dtype(device: torch.device) -> torch.dtype:
    """`dtype: auto`: bf16 on GPUs that compute it natively, fp16 on older GPUs, fp32 on the CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.float32


def gpu_budget(device: torch.device) -> dict:
    """{name, total, free} in bytes of the GPU this process trains on, as the estimator expects, with `free`
    counting the memory this process already holds as available to it (see the module docstring)."""
    from grpo_studio.engine.common.estimate_model import CUDA_CONTEXT

    free, total = torch.cuda.mem_get_info(device)
    held = torch.cuda.memory_reserved(device)
    return {"name": torch.cuda.get_device_name(device), "total": int(total),
            "free": int(min(total, free + held + CUDA_CONTEXT))}


def should_offload(config: TrainConfig, device: torch.device, model_config: dict | None = None) -> bool:
    """`offload_activations`: on -> True, off -> False, auto -> True on CUDA when the run would not fit
    without offloading (an estimator failure keeps plain checkpointing: the estimate is advisory)."""
    if config.offload_activations != "auto":
        return config.offload_activations == "on"
    if device.type != "cuda":
        return False
    try:
        from grpo_studio.engine.common.estimate import needs_offload

        return needs_offload(config, gpu_budget(device), model_config)
    except Exception:  # never fail a run over the advisory estimate
        return False
