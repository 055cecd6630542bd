"""What the benchmarks share: median and spread of repeated figures, and a process's resident memory
(current, and the peak since a reset) read from Linux's /proc, with getrusage as the fallback elsewhere."""
from __future__ import annotations

import ctypes
import ctypes.util
import resource
import statistics
import sys
from pathlib import Path


def spread(values: list[float]) -> dict:
    """{median, min, max, all} of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": list(values)}


def status_bytes(field: str) -> int | None:
    """A memory line of /proc/self/status ("VmRSS", "VmHWM") in bytes; None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss(trim_heap: bool = False) -> bool:
    """Restart the peak RSS at the current RSS (Linux >= 4.0); False where that is not possible. With
    `trim_heap`, freed heap memory goes back to the system first (glibc), so it is not reused unseen."""
    if trim_heap:
        libc = ctypes.util.find_library("c")
        try:
            ctypes.CDLL(libc).malloc_trim(0)
        except (OSError, AttributeError, TypeError):  # not glibc: the peak may miss memory the heap kept
            pass
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak RSS in bytes since the last reset (Linux), else the process's whole-life high-water mark."""
    peak = status_bytes("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024
