"""Checkpoint folders on disk, without torch: their names, which are complete, their configs, pruning.

(checkpoint.py writes and reads their contents; the config comparison before a resume and the run store
need only this part, so they never import torch.)
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.pt"
COMPLETE_FILE = "complete.json"
CONFIG_FILE = "config.json"
_NAME = re.compile(r"^step-(\d+)$")


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


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints (keep = 0: keep all); returns what went.
    Only complete `step-N` folders are touched: nothing the engine did not write."""
    if keep <= 0:
        return []
    removed = []
    for step, path in complete_checkpoints(folder)[:-keep]:
        # Renamed first (atomic), so a kill mid-delete never leaves a half-deleted folder that still looks
        # complete; remove_partial clears what such a kill leaves.
        doomed = folder / f".tmp-step-{step}-pruned"
        try:
            path.rename(doomed)
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
        removed.append(path)
    return removed


def checkpoint_config(path: Path) -> dict | None:
    """The config a checkpoint was written with (None for checkpoints older than config.json)."""
    try:
        value = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def newest_checkpoint_config(folder: Path) -> tuple[str, dict | None] | None:
    """(name, config) of the newest complete checkpoint (config None when it has none); None without any."""
    found = complete_checkpoints(folder)
    if not found:
        return None
    path = found[-1][1]
    return path.name, checkpoint_config(path)
