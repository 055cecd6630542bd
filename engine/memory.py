"""The `memory` event's fields: GPU allocated / reserved / peak (None on CPU), process RSS, offloaded bytes."""
from __future__ import annotations

from typing import Any

import psutil
import torch

_PROCESS = psutil.Process()


def memory_fields(device: torch.device, offload: Any = None) -> dict[str, int | None]:
    """Sizes in bytes. `offload` is the offloaded-checkpointing handle (its byte counters), if any."""
    gpu = {"gpu_allocated": None, "gpu_reserved": None, "gpu_peak": None}
    if device.type == "cuda":
        gpu = {"gpu_allocated": torch.cuda.memory_allocated(device),
               "gpu_reserved": torch.cuda.memory_reserved(device),
               "gpu_peak": torch.cuda.max_memory_allocated(device)}
    stats = offload.stats() if offload is not None else {}
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
