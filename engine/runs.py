"""The run folder and the run store. Torch-free: the GUI and the CLI list and inspect runs with it.

    config.yaml  status.json  secret  events.jsonl  engine.log  checkpoints/step-N/  adapter/  exports/
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

RUNS_DIR_ENV = "GRPO_STUDIO_RUNS_DIR"


def default_runs_dir() -> Path:
    """$GRPO_STUDIO_RUNS_DIR, else the platform's user data folder (~/.local/share/grpo-studio/runs)."""
    override = os.environ.get(RUNS_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("grpo-studio")) / "runs"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def secret(self) -> Path:
        return self.root / "secret"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def lock(self) -> Path:
        return self.root / "engine.lock"


def new_run_dir(name_hint: str, runs_dir: Path | None = None) -> Path:
    """A fresh, unique run folder named after the time and the model/task (`2026-11-25_0445_demo`)."""
    runs_dir = runs_dir or default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name_hint.split("/")[-1]).strip("-")[:40] or "run"
    stem = time.strftime("%Y-%m-%d_%H%M%S") + "_" + slug
    candidate, n = runs_dir / stem, 1
    while candidate.exists():
        n += 1
        candidate = runs_dir / f"{stem}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(paths: RunPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.status.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_status(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json (atomically) and return the new status."""
    status = read_status(paths)
    status.update(fields)
    atomic_write_text(paths.status, json.dumps(status, indent=1))
    return status
