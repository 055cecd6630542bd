"""`grpo-studio doctor`: what a user pastes into a bug report (versions, GPU, memory, disk, caches)."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import sys
from typing import Any

NAME = "doctor"
HELP = "report Python, torch, CUDA, GPU, bitsandbytes, triton, RAM, disk and cache locations"
ORDER = 90

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "triton", "datasets", "gguf", "PySide6-Essentials",
            "pyqtgraph")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a report")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _probe(label: str, fn) -> Any:
    """Run one check; a broken install is itself a finding, never a crash of the report."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as text
        return f"error: {type(exc).__name__}: {exc}"


def _torch_facts() -> dict:
    import torch

    facts: dict[str, Any] = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
                             "cuda_available": torch.cuda.is_available(), "gpus": []}
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            facts["gpus"].append({"name": props.name, "total": total, "free": free,
                                  "capability": f"{props.major}.{props.minor}",
                                  "bf16": (props.major, props.minor) >= (8, 0)})  # native, as dtype auto asks
    return facts


def _bitsandbytes_status() -> str:
    import bitsandbytes  # noqa: F401 - importing is the check

    return f"ok ({_version('bitsandbytes')})"


def _triton_status() -> str:
    import triton

    return f"ok ({triton.__version__})"


def collect() -> dict:
    import psutil
    from huggingface_hub import constants

    from grpo_studio import __version__
    from grpo_studio.engine.common.runs import default_runs_dir

    runs_dir = default_runs_dir()
    disk_path = runs_dir if runs_dir.exists() else runs_dir.anchor or "/"
    memory = psutil.virtual_memory()
    return {
        "grpo_studio": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "frozen": bool(getattr(sys, "frozen", False)),
        "packages": {name: _version(name) for name in PACKAGES},
        "torch": _probe("torch", _torch_facts),
        "bitsandbytes": _probe("bitsandbytes", _bitsandbytes_status),
        "triton": _probe("triton", _triton_status),
        "ram": {"total": memory.total, "available": memory.available},
        "cpu_count": os.cpu_count(),
        "runs_dir": str(runs_dir),
        "disk_free": shutil.disk_usage(disk_path).free,
        "hf_cache": constants.HF_HUB_CACHE,
        "hf_offline": bool(constants.HF_HUB_OFFLINE),
    }


def _gb(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def format_report(facts: dict) -> str:
    torch_facts = facts["torch"]
    lines = [f"GRPO Studio {facts['grpo_studio']}  (Python {facts['python']}, {facts['platform']})"]
    if isinstance(torch_facts, dict):
        cuda = torch_facts["cuda_build"] or "none (CPU build)"
        lines.append(f"torch {torch_facts['torch']}, CUDA build {cuda}, CUDA available: "
                     f"{'yes' if torch_facts['cuda_available'] else 'no'}")
        for gpu in torch_facts["gpus"]:
            lines.append(f"GPU {gpu['name']}: {_gb(gpu['total'])} total, {_gb(gpu['free'])} free, "
                         f"compute {gpu['capability']}, bf16 {'yes' if gpu['bf16'] else 'no'}")
        if not torch_facts["gpus"]:
            lines.append("GPU: none found (training runs on the CPU: fine for the demo, slow for real models)")
    else:
        lines.append(f"torch: {torch_facts}")
    lines.append(f"bitsandbytes: {facts['bitsandbytes']}")
    lines.append(f"triton: {facts['triton']}")
    lines.append(f"RAM: {_gb(facts['ram']['available'])} available of {_gb(facts['ram']['total'])}; "
                 f"{facts['cpu_count']} CPU threads")
    lines.append(f"runs folder: {facts['runs_dir']} ({_gb(facts['disk_free'])} free)")
    lines.append(f"HF cache: {facts['hf_cache']}" + ("  [offline]" if facts["hf_offline"] else ""))
    lines.append("packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in facts["packages"].items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    facts = collect()
    print(json.dumps(facts, indent=1) if args.json else format_report(facts))
    return 0
