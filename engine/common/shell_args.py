"""Command lines the app prints for the user to paste: quoted for the shell (a run named "sp ace"), and naming a
run so the command works from any folder. Torch-free."""
from __future__ import annotations

import os
import shlex
from pathlib import Path


def quoted(value: str | Path) -> str:
    return shlex.quote(str(value))


def in_runs_dir(run_dir: Path) -> bool:
    """The run is in the runs folder (so `grpo-studio runs` lists it and its name alone finds it)."""
    from grpo_studio.engine.common.runs import default_runs_dir

    try:
        return os.path.realpath(Path(run_dir).parent) == os.path.realpath(default_runs_dir())
    except OSError:
        return False


def run_argument(run_dir: str | Path) -> str:
    """RUN for `grpo-studio attach RUN` and the like: its name inside the runs folder, else its absolute path
    (a relative one would fail from another folder); quoted for the shell."""
    run_dir = Path(run_dir)
    return quoted(run_dir.name if in_runs_dir(run_dir) else os.path.abspath(run_dir))
