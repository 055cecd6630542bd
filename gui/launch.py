"""Start an engine that outlives the GUI: engine.launcher.start_detached (own session, output to engine.log).
$GRPO_STUDIO_CLI (used by tests) swaps the executable, exactly as for the other CLI jobs."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from grpo_studio.gui.cli_job import CLI_ENV, cli_command
from grpo_studio.engine.runs import RunPaths


def start_engine(argv: list[str], run_dir: str | Path) -> int:
    """Launch `grpo-studio *argv` detached for `run_dir`; returns the engine's pid."""
    run_dir = Path(run_dir)
    if not os.environ.get(CLI_ENV):
        try:
            from grpo_studio.engine.launcher import start_detached
        except ImportError:
            start_detached = None
        if start_detached is not None:
            return int(start_detached(list(argv), run_dir))
    # No launcher (or a test's fake CLI): the same recipe, inline.
    paths = RunPaths(run_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.log, "ab") as log:
        process = subprocess.Popen(cli_command(list(argv)), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=str(run_dir))
    return process.pid
