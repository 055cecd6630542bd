"""Start an engine that outlives whoever started it (the GUI, a terminal). Torch-free.

The engine gets its own session / process group (a closed terminal or GUI sends it no signal), no stdin,
and its stdout/stderr appended to the run's engine.log — never a pipe, which would stall the engine once
nobody reads it. status.json gets the pid at once, so the run shows as starting before Python has even
imported torch.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from grpo_studio.engine.common.runs import RunPaths, folder_identity, read_status, write_status

CLI_ENV = "GRPO_STUDIO_CLI"  # a command line that stands in for `grpo-studio` (tests swap in a fake CLI)


def engine_command(argv: list[str]) -> list[str]:
    """The command line for `grpo-studio *argv`: $GRPO_STUDIO_CLI if set, else this installation's Python
    (or the frozen bundle)."""
    override = os.environ.get(CLI_ENV)
    if override:
        return shlex.split(override) + list(argv)
    if getattr(sys, "frozen", False):  # PyInstaller bundle: the executable is grpo-studio itself
        return [sys.executable, *argv]
    # -P: never put the current folder on sys.path. Run from a source checkout, its top-level kernels/
    # folder would otherwise shadow Hugging Face's `kernels` package, which transformers imports.
    return [sys.executable, "-P", "-m", "grpo_studio", *argv]


def start_detached(argv: list[str], run_dir: str | Path) -> int:
    """Run `grpo-studio *argv` (which must train in `run_dir`) in the background; returns its pid at once."""
    paths = RunPaths(Path(run_dir))
    paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    kwargs: dict = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
    else:
        kwargs["start_new_session"] = True
    # 0600: the engine's output quotes prompts and completions (os.open applies the mode on creation only)
    with os.fdopen(os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(engine_command(list(argv)), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, close_fds=True, **kwargs)
    # The engine rewrites these once it runs; until then the run is "starting" under this pid (or "crashed"
    # if it dies before that), and a stale endpoint from an earlier segment is not tried.
    if read_status(paths).get("pid") != process.pid:  # (unless the engine was quicker and wrote its own)
        write_status(paths, pid=process.pid, state="starting", started=time.time(), endpoint=None,
                     folder=folder_identity(paths.root))
    return process.pid
