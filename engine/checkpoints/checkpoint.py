"""Checkpoints: everything needed to continue a run exactly where it stopped.

    checkpoints/step-N/adapter/            the LoRA adapter in PEFT format (usable on its own)
    checkpoints/step-N/trainer_state.pt    optimizer, scheduler, RNG states (python, numpy, torch, cuda),
                                           data position, step
    checkpoints/step-N/config.json         the run's settings when it was written (what a resume compares)
    checkpoints/step-N/complete.json       written last: the checkpoint is whole

A checkpoint is written into `checkpoints/.tmp-step-N-*/` and renamed to `step-N` only when complete,
so a crash mid-save never leaves a folder that looks usable; only `step-N` folders with complete.json count.
A full disk during the save becomes a DiskFullError (the older checkpoints stay as they were); only the
newest `checkpoint_keep` complete checkpoints are kept. A resume loads the newest checkpoint that reads
back whole and falls back to older ones, saying so, when the newest is damaged.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# The torch-free half (names, listing, pruning) lives in checkpoint_files; re-exported for the loop.
# The torch-free half (names, listing, pruning) lives in checkpoint_files; re-exported for the loop.
from grpo_studio.engine.checkpoints.files import (  # noqa: F401  # noqa: F401
    COMPLETE_FILE,
    CONFIG_FILE,
    STATE_FILE,
    checkpoint_config,
    complete_checkpoints,
    latest_checkpoint,
    prune_checkpoints,
    remove_partial,
)
from grpo_studio.engine.common.disk import as_disk_full
from grpo_studio.engine.common.errors import StudioError


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                             "numpy": (kind, np.asarray(keys).tolist(), pos, has_gauss, cached)}
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


def save_checkpoint(folder: Path, step: int, model: Any, optimizer: torch.optim.Optimizer,
                    scheduler: Any, data_state: dict, extra: dict | None = None) -> Path:
    """Write checkpoint `step` under `folder` (a run's checkpoints/) atomically; returns its path.
    `extra["config"]` (the run's config as a dict), when given, goes to config.json beside the state."""
    extra = dict(extra or {})
    config = extra.pop("config", None)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-step-{step}-"))
    except OSError as error:
        raise (as_disk_full(error, folder, f"saving checkpoint step-{step}") or error) from error
    final = folder / f"step-{step}"
    try:
        model.save_pretrained(str(tmp / "adapter"))
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": capture_rng(), "data": data_state, **extra}, tmp / STATE_FILE)
        if config is not None:
            (tmp / CONFIG_FILE).write_text(json.dumps(config, sort_keys=True))
        (tmp / COMPLETE_FILE).write_text(json.dumps({"step": step, "time": time.time()}))
        _fsync_tree(tmp)  # on disk before the rename makes it count: a power cut keeps it whole too
        if final.exists():  # a stop right after a periodic save writes the same step again
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(folder)
    except BaseException as error:
        # Judge "disk full" before the half-written files go: torch.save's error says nothing about space.
        full = as_disk_full(error, folder, f"saving checkpoint step-{step}") if isinstance(error, Exception) else None
        shutil.rmtree(tmp, ignore_errors=True)
        if full is not None:
            raise full from error
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


class DamagedCheckpoint(StudioError):
    kind = "crash"  # not the user's settings and not the data: the files themselves


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(adapter weights, trainer state) of a checkpoint, read in full before anything is applied, so a
    damaged file leaves the model untouched. Raises DamagedCheckpoint naming the file."""
    from safetensors.torch import load_file

    adapter = path / "adapter" / "adapter_model.safetensors"
    try:
        weights = load_file(str(adapter), device="cpu")
    except Exception as error:  # noqa: BLE001 - truncated, zeroed, missing: all mean damaged
        raise DamagedCheckpoint(f"{adapter} is damaged ({type(error).__name__}: {error})") from error
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not {"step", "optimizer", "scheduler", "rng", "data"} <= set(state):
            raise ValueError("fields are missing")
    except Exception as error:  # noqa: BLE001
        raise DamagedCheckpoint(f"{path / STATE_FILE} is damaged ({type(error).__name__}: {error})") from error
    return weights, state


def load_newest_intact(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                       warn: Callable[[str], None]) -> tuple[Path, dict] | None:
    """Load the newest complete checkpoint that reads back whole; each damaged one is skipped with a
    warning. None when there is no checkpoint; DamagedCheckpoint when every one is damaged."""
    found = complete_checkpoints(folder)
    for _, path in reversed(found):
        try:
            weights, state = read_checkpoint(path)
        except DamagedCheckpoint as error:
            warn(f"skipping checkpoint {path.name}: {error.message}; trying the one before it")
            continue
        return path, load_checkpoint(path, model, optimizer, scheduler, (weights, state))
    if found:
        raise DamagedCheckpoint(f"every checkpoint in {folder} is damaged ({len(found)} tried)",
                                damaged_checkpoints_hint(folder.parent))
    return None


def damaged_checkpoints_hint(run_dir: Path) -> str:
    """What to do when no checkpoint can be resumed. Never --overwrite: it would delete the run's other work
    (an intact final adapter above all), and a new folder loses nothing."""
    import shlex

    again = (f"train again in a new folder: `grpo-studio train {shlex.quote(str(run_dir / 'config.yaml'))} "
             "--run-dir NEW_FOLDER`")
    adapter = run_dir / "adapter" / "adapter_model.safetensors"
    if adapter.is_file() and adapter.stat().st_size > 0:
        return (f"the run's final adapter in {run_dir / 'adapter'} is intact: export or try it as it is; to "
                f"{again} (this folder and its adapter stay as they are)")
    return f"{again} (this folder stays as it is)"


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    contents: tuple[dict, dict] | None = None) -> dict:
    """Restore adapter weights, optimizer, scheduler and RNG states; returns the saved state (step, data).
    `contents`: what read_checkpoint already read."""
    from peft import set_peft_model_state_dict

    weights, state = contents or read_checkpoint(path)
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise RuntimeError(f"checkpoint {path} does not match the model: {len(missing)} LoRA weights missing")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"])
    return state
