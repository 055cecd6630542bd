"""Shared by stop / pause / resume / save-now: send one command to a run's engine and say what happened."""
from __future__ import annotations

import argparse

from grpo_studio.engine.common.errors import StudioError


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run name (or a unique start of it) or run folder")
    parser.add_argument("--runs-dir", help="runs folder (default: the app's; or $GRPO_STUDIO_RUNS_DIR)")


def resolve(args: argparse.Namespace):
    from pathlib import Path

    from grpo_studio.engine.common.runs import resolve_run

    return resolve_run(args.run, Path(args.runs_dir) if args.runs_dir else None)


def send(run_dir, cmd: str, done_text: str) -> int:
    """Send `cmd`; print `done_text` on success. Raises a StudioError the CLI prints when no engine answers."""
    from grpo_studio.engine.common.client import EngineNotRunning, send_command
    from grpo_studio.engine.common.runs import summarize_run

    try:
        answer = send_command(run_dir, cmd)
    except EngineNotRunning:
        state = summarize_run(run_dir).state
        from grpo_studio.engine.common.shell_args import quoted

        hint = (f"continue it with `grpo-studio train --resume --run-dir {quoted(run_dir)}`"
                if state in ("crashed", "stopped") else "see all runs with `grpo-studio runs`")
        raise StudioError(f"run {run_dir.name} has no engine running (it is {state})", hint) from None
    except (OSError, EOFError, TimeoutError) as error:
        raise StudioError(f"could not reach the engine of {run_dir.name}: {error or type(error).__name__}",
                          "check `grpo-studio runs`; the engine may be exiting right now") from None
    if not answer.get("ok"):
        raise StudioError(f"the engine refused {cmd!r}: {answer.get('error')}")
    from grpo_studio.engine.common.shell_args import run_argument

    print(done_text.format(run=run_argument(run_dir)))
    return 0
