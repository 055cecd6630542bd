"""Checkpoints: everything needed to continue a run exactly where it stopped.

    checkpoints/step-N/adapter/            the LoRA adapter in PEFT format (usable on its own)
    checkpoints/step-N/trainer_state.pt    optimizer, scheduler, RNG states (python, numpy, torch, cuda),
                                           data position, step
    checkpoints/step-N/complete.json       written last: the checkpoint is whole

A checkpoint is written into `checkpoints/.tmp-step-N-*/` and renamed to `step-N` only when complete,
so a crash mid-save never leaves a folder that looks usable; only `step-N` folders with complete.json count.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

STATE_FILE = "trainer_state.pt"
COMPLETE_FILE = "complete.json"
_NAME = re.compile(r"^step-(\d+)$")


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, keys.tolist(), pos, has_gauss, cached)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, data_state: dict, extra: dict | None = None) -> Path:
    """Write checkpoint `step` under `folder` (a run's checkpoints/) atomically; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step}"
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-step-{step}-"))
    try:
        model.save_pretrained(str(tmp / "adapter"))
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": capture_rng(), "data": data_state, **(extra or {})}, tmp / STATE_FILE)
        (tmp / COMPLETE_FILE).write_text(json.dumps({"step": step, "time": time.time()}))
        _fsync_tree(tmp)  # on disk before the rename makes it count: a power cut keeps it whole too
        if final.exists():  # a stop right after a periodic save writes the same step again
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _fsync_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            _fsync_dir(path)
        else:
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a folder's entries (new names, renames) durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def complete_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / COMPLETE_FILE).is_file() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    found = complete_checkpoints(folder)
    return found[-1][1] if found else None


def remove_partial(folder: Path) -> None:
    """Delete temp folders a crashed save left behind."""
    if folder.is_dir():
        for path in folder.glob(".tmp-step-*"):
            shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict:
    """Restore adapter weights, optimizer, scheduler and RNG states; returns the saved state (step, data)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"), device="cpu")
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise RuntimeError(f"checkpoint {path} does not match the model: {len(missing)} LoRA weights missing")
    state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"])
    return state
