"""The weights generation runs on, and in which dtype, without touching the training weights.

`generation_weights` hands out the plain causal LM under a peft model, arranged for sampling:
- merged: every LoRA layer is swapped for a plain Linear holding W + scale·B·A (for a 4-bit base, the
  dequantized W), so a decode step costs one GEMM per layer instead of a cast and three; the LoRA modules
  are put back afterwards. The training tensors are never written, so they come back bit for bit (a merge
  followed by an unmerge in floating point would not).
- adapter: peft's own unmerged forward (when the merged copies would not fit in free memory).
With a generation dtype other than the training dtype, every other floating parameter is swapped for a
copy in that dtype for the duration, and the original tensor objects are put back.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

MEMORY_SHARE = 0.8  # of the free memory that merged copies + KV cache may take
# bench_rollout on a 2-core AVX512-BF16 CPU: bf16 vs fp32 decoding 0.74x at 180k parameters, 1.41x at 21M,
# 1.83x at 0.5B (medians of 3, a busy machine)
CPU_BF16_MIN_PARAMS = 20_000_000


@dataclass
class GenerationPlan:
    dtype: torch.dtype
    merged: bool
    reason: str  # one line for the log: why this dtype and weight layout

    def describe(self) -> str:
        layout = "LoRA merged into a copy of the weights" if self.merged else "peft's unmerged LoRA forward"
        return f"generation in {str(self.dtype).removeprefix('torch.')}, {layout} ({self.reason})"


def resolve_generation_dtype(name: str, train_dtype: torch.dtype, device: torch.device,
                             params: int) -> tuple[torch.dtype, str]:
    """(dtype, why) for `generation_dtype` (auto | bfloat16 | float16 | float32)."""
    if name != "auto":
        return getattr(torch, name), "set in the config"
    if train_dtype != torch.float32:
        return train_dtype, "the training dtype"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported() and torch.cuda.get_device_capability(device)[0] >= 8:
            return torch.bfloat16, "bf16 tensor cores; training recomputes log-probs in fp32"
        return torch.float32, "no native bf16 on this GPU"
    if device.type == "cpu" and params >= CPU_BF16_MIN_PARAMS and _cpu_has_native_bf16():
        return torch.bfloat16, "native bf16 on this CPU and a model this size; training stays fp32"
    return torch.float32, "fp32 was as fast or faster here"


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def lora_layers(model: nn.Module) -> list[tuple[str, Any]]:
    """(name, peft LoraLayer): Any, as the layers' LoRA attributes (lora_A, use_dora, ...) are peft's."""
    from peft.tuners.lora import LoraLayer

    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoraLayer)]


def merged_copy_bytes(model: nn.Module, dtype: torch.dtype, train_dtype: torch.dtype) -> int:
    """Extra memory while generating from merged copies (and dtype copies of the rest)."""
    size = torch.empty((), dtype=dtype).element_size()
    merged = sum(_base_linear(m).in_features * _base_linear(m).out_features for _, m in lora_layers(model))
    other = 0
    if dtype != train_dtype:
        inside = {id(p) for _, m in lora_layers(model) for p in m.parameters()}
        other = sum(p.numel() for p in _unique_parameters(model) if id(p) not in inside and p.is_floating_point())
    return (merged + other) * size


def can_merge(model: nn.Module) -> bool:
    """Plain LoRA on Linear layers only (DoRA and other variants keep peft's forward)."""
    layers = lora_layers(model)
    return bool(layers) and all(isinstance(_base_linear(m), nn.Linear) and not any(m.use_dora.values())
                                and not m.merged for _, m in layers)


def free_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


@contextlib.contextmanager
def generation_weights(model: Any, plan: GenerationPlan, train_dtype: torch.dtype) -> Iterator[nn.Module]:
    """The base causal LM of a peft `model`, laid out per `plan`; everything is put back on exit."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    originals: list[tuple[nn.Parameter, torch.Tensor]] = []
    try:
        if plan.merged:
            for name, layer in lora_layers(model):
                parent, child = _parent(model, name)
                setattr(parent, child, _merged_linear(layer, plan.dtype))
                swapped.append((parent, child, layer))
        if plan.dtype != train_dtype:
            for p in _unique_parameters(base):
                if p.is_floating_point() and p.dtype != plan.dtype:
                    originals.append((p, p.data))
                    p.data = p.data.to(plan.dtype)
        yield base
    finally:
        for p, data in originals:
            p.data = data
        for parent, child, layer in reversed(swapped):
            setattr(parent, child, layer)


@torch.no_grad()
def _merged_linear(layer: Any, dtype: torch.dtype) -> nn.Linear:
    base = _base_linear(layer)
    weight = _dense_weight(base)
    for adapter in [] if layer.disable_adapters else layer.active_adapters:  # under disable_adapter(): base
        if adapter in layer.lora_A:
            weight = weight + layer.get_delta_weight(adapter).float()
    out = torch.nn.utils.skip_init(nn.Linear, base.in_features, base.out_features, bias=base.bias is not None,
                                   device=weight.device, dtype=dtype)  # no random init of weights replaced next
    out.weight.data = weight.to(dtype)
    if base.bias is not None:
        out.bias.data = base.bias.data.to(dtype)
    return out.requires_grad_(False)


def _dense_weight(base: Any, block: int = 1024) -> torch.Tensor:  # nn.Linear or bitsandbytes' Linear4bit
    """The fp32 [out, in] weight a Linear computes with. A quantized one (bitsandbytes NF4, whose CPU
    backend repacks its storage on first use) is read through its own forward on identity blocks, so the
    result is what the layer multiplies by, whatever the storage layout."""
    if base.weight.is_floating_point():
        return base.weight.float()
    dtype = getattr(base, "compute_dtype", None) or torch.float32
    bias, base.bias = base.bias, None
    try:
        blocks = []
        for start in range(0, base.in_features, block):
            n = min(block, base.in_features - start)
            eye = torch.zeros(n, base.in_features, dtype=dtype, device=base.weight.device)
            eye[torch.arange(n), start + torch.arange(n)] = 1
            blocks.append(base(eye).float())
    finally:
        base.bias = bias
    return torch.cat(blocks).T.contiguous()


def _base_linear(layer: Any) -> Any:  # a LoraLayer's wrapped Linear (or quantized Linear)
    return layer.get_base_layer()


def _parent(root: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    head, _, child = dotted.rpartition(".")
    return (root.get_submodule(head) if head else root), child


def _unique_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list(model.parameters())  # parameters() already yields a tied weight once
