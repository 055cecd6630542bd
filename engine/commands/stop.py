"""`grpo-studio stop RUN [--wait]`: finish the current step, save a checkpoint, end the run as stopped."""
from __future__ import annotations

import argparse
import time

from grpo_studio.engine.commands._control import add_run_argument, resolve, send

NAME = "stop"
HELP = "stop a running run after its current step (a checkpoint is saved; continue it with train --resume)"
ORDER = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    parser.add_argument("--wait", action="store_true", help="wait until the engine has saved and exited")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S", help="how long --wait waits")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.errors import StudioError
    from grpo_studio.engine.common.runs import summarize_run

    run_dir = resolve(args)
    send(run_dir, "stop", "stopping {run} after its current step (a checkpoint is saved)")
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while summarize_run(run_dir).alive:
        if time.monotonic() > deadline:
            raise StudioError(f"run {run_dir.name} is still running after {args.timeout:.0f} s",
                              "it finishes the current step first; wait longer or look at its engine.log")
        time.sleep(0.25)
    summary = summarize_run(run_dir)
    print(f"run {run_dir.name} is {summary.state} at step {summary.step}")
    return 0
