"""The GPU the estimate is judged against: name, total and free memory from `nvidia-smi`, without torch.

Asking torch would initialise CUDA in the GUI process (hundreds of MB on the GPU, seconds of start-up), so the
estimator reads nvidia-smi, with a timeout, and caches the answer briefly because the GUI asks on every edit.
GRPO_STUDIO_GPU overrides it for tests and for planning a card you do not have: "none", or the same CSV
nvidia-smi prints ("NAME, TOTAL_MIB, FREE_MIB").
"""
from __future__ import annotations

import os
import shutil
import time

QUERY = ["--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"]
TIMEOUT_S = 3.0
CACHE_S = 10.0
ENV = "GRPO_STUDIO_GPU"

_cache: tuple[float, dict | None] | None = None


def detect_gpu() -> dict | None:
    """{name, total, free} in bytes for the first NVIDIA GPU, or None when there is none (or no driver)."""
    global _cache
    override = os.environ.get(ENV)
    if override is not None:
        return None if override.strip().lower() in ("", "none") else parse_nvidia_smi(override)
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < CACHE_S:
        return _cache[1]
    _cache = (now, _query())
    return _cache[1]


def _query() -> dict | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    import subprocess  # only when there is a driver to ask: keeps the import cheap for the GUI
    try:
        done = subprocess.run([exe, *QUERY], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else None


def parse_nvidia_smi(text: str) -> dict | None:
    """First line of `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits`."""
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) != 3:
            continue
        try:
            total, free = int(float(parts[1]) * 2**20), int(float(parts[2]) * 2**20)  # MiB -> bytes
        except ValueError:
            continue
        return {"name": parts[0], "total": total, "free": free}
    return None
