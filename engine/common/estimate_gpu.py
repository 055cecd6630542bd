"""The GPU the estimate is judged against: name, total and free memory from `nvidia-smi`, without torch.

It is the GPU the engine would train on: the first one CUDA_VISIBLE_DEVICES names (by index or UUID), else
nvidia-smi's first; CUDA_VISIBLE_DEVICES="" or "-1" hides every GPU. (An index means nvidia-smi's PCI order,
which is CUDA's order when CUDA_DEVICE_ORDER=PCI_BUS_ID; a MIG instance is judged by its parent's first GPU.)

Asking torch would initialise CUDA in the GUI process (hundreds of MB on the GPU, seconds of start-up), so the
estimator reads nvidia-smi, with a timeout, and caches the answer briefly because the GUI asks on every edit.
GRPO_STUDIO_GPU overrides it for tests and for planning a card you do not have: "none", or the same CSV
nvidia-smi prints ("NAME, TOTAL_MIB, FREE_MIB").
"""
from __future__ import annotations

import os
import shutil
import time

QUERY = ["--query-gpu=index,uuid,name,memory.total,memory.free", "--format=csv,noheader,nounits"]
TIMEOUT_S = 3.0
CACHE_S = 10.0
ENV = "GRPO_STUDIO_GPU"

_cache: tuple[float, dict | None] | None = None


def detect_gpu() -> dict | None:
    """{name, total, free} in bytes for the GPU a run would use, or None when there is none (or no driver)."""
    global _cache
    override = os.environ.get(ENV)
    if override is not None:
        return None if override.strip().lower() in ("", "none") else parse_nvidia_smi(override)
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < CACHE_S:
        return _cache[1]
    _cache = (now, _query())
    return _cache[1]


def gpu_count() -> int:
    """How many GPUs a run on this machine may train on (those CUDA_VISIBLE_DEVICES leaves visible); 0 for
    none. GRPO_STUDIO_GPU fakes them: one "NAME, TOTAL_MIB, FREE_MIB" line per GPU."""
    override = os.environ.get(ENV)
    if override is not None:
        return sum(parse_nvidia_smi(line) is not None for line in override.splitlines())
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    import subprocess
    try:
        done = subprocess.run([exe, *QUERY], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    gpus = parse_gpu_list(done.stdout) if done.returncode == 0 else []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(gpus)
    names = [v.strip() for v in visible.split(",") if v.strip()]
    return sum(1 for v in names if any(g["index"] == v or (v.startswith("GPU-") and g["uuid"].startswith(v))
                                       for g in gpus) or v.startswith("MIG-"))


def _query() -> dict | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    import subprocess  # only when there is a driver to ask: keeps the import cheap for the GUI
    try:
        done = subprocess.run([exe, *QUERY], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return pick_visible(parse_gpu_list(done.stdout)) if done.returncode == 0 else None


def parse_gpu_list(text: str) -> list[dict]:
    """Every GPU of `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.free --format=csv,...`."""
    gpus = []
    for line in text.strip().splitlines():
        head = [part.strip() for part in line.split(",", 2)]
        if len(head) != 3:
            continue
        gpu = parse_nvidia_smi(head[2])
        if gpu is not None:
            gpus.append({"index": head[0], "uuid": head[1], **gpu})
    return gpus


def pick_visible(gpus: list[dict], visible: str | None = None) -> dict | None:
    """The GPU CUDA would call device 0 under CUDA_VISIBLE_DEVICES (`visible`, default from the environment)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    chosen = gpus[0] if gpus else None
    if visible is not None:
        first = visible.split(",")[0].strip()
        if not (first.isdigit() or first.startswith(("GPU-", "MIG-"))):
            return None  # "", "-1" or an invalid entry: CUDA sees no GPU
        matches = [g for g in gpus if g["index"] == first or (first.startswith("GPU-")
                                                               and g["uuid"].startswith(first))]
        if matches:
            chosen = matches[0]
        elif not first.startswith("MIG-"):
            return None  # an index or UUID that is not there: CUDA sees no GPU either
    return None if chosen is None else {"name": chosen["name"], "total": chosen["total"], "free": chosen["free"]}


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
