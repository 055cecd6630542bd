"""The `memory` event's fields: GPU allocated / reserved / peak (None on CPU), process RSS, offloaded bytes.

`gpu_peak` and `gpu_peak_reserved` are per step: the highest allocated / reserved bytes since the previous
memory event (for the first one, since the process started: loading included); `offloaded_peak` likewise.
Reading them resets the peak counters, so the chart shows each step's own peak instead of a lifetime maximum
that goes flat.
Reserved memory is what the caching allocator holds; the CUDA context (which the estimator counts) is not in it.
"""
from __future__ import annotations

from typing import Any

import psutil
import torch

_PROCESS = psutil.Process()


def memory_fields(device: torch.device, offload: Any = None) -> dict[str, int | None]:
    """Sizes in bytes. `offload` is the offloaded-checkpointing handle (its byte counters), if any."""
    gpu: dict[str, int | None] = dict.fromkeys(("gpu_allocated", "gpu_reserved", "gpu_peak", "gpu_peak_reserved"))
    if device.type == "cuda":
        gpu = {"gpu_allocated": torch.cuda.memory_allocated(device),
               "gpu_reserved": torch.cuda.memory_reserved(device),
               "gpu_peak": torch.cuda.max_memory_allocated(device),
               "gpu_peak_reserved": torch.cuda.max_memory_reserved(device)}
        torch.cuda.reset_peak_memory_stats(device)  # the next event reports the next step's own peak
    stats = offload.stats() if offload is not None else {}
    if offload is not None and hasattr(offload, "reset_peaks"):
        offload.reset_peaks()  # offloaded_peak is per step too
    return {**gpu, "rss": _PROCESS.memory_info().rss, "offloaded": int(stats.get("offloaded", 0)),
            "offloaded_peak": int(stats.get("offloaded_peak", 0))}


def peak_rss() -> int:
    """This process's peak resident set size in bytes (0 where the OS does not say)."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return 0
