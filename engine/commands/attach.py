"""`grpo-studio attach RUN`: follow a run in the terminal with the same progress bar as `train`.

Replays the run's events from the first (or `--from-seq`), then follows live ones over the engine's socket;
ends at the run's `done`, or when the engine is gone, and then prints the run's state. Ctrl-C only detaches:
the run goes on.
"""
from __future__ import annotations

import argparse

from grpo_studio.engine.commands._control import add_run_argument, resolve
from grpo_studio.engine.common.shell_args import quoted, run_argument

NAME = "attach"
HELP = "follow a run's progress in the terminal (Ctrl-C detaches; the run goes on)"
ORDER = 31


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)
    parser.add_argument("--from-seq", type=int, default=0, metavar="N", help="start at event N (default: 0)")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.client import follow_events
    from grpo_studio.engine.common.runs import summarize_run
    from grpo_studio.engine.run.progress import ProgressPrinter

    run_dir = resolve(args)
    print(f"run folder: {run_dir}")
    printer = ProgressPrinter()
    try:
        for event in follow_events(run_dir, from_seq=args.from_seq):
            printer.handle(event)
    except KeyboardInterrupt:
        printer.close()
        print(f"\ndetached; the run goes on (attach again with: grpo-studio attach {run_argument(run_dir)})")
        return 0
    printer.close()
    summary = summarize_run(run_dir)
    print(f"run {run_dir.name} is {summary.state} at step {summary.step}/{summary.total_steps or '?'}"
          + (f": {summary.damage}" if summary.damage else ""))
    if summary.state == "crashed":
        print(f"continue it with: grpo-studio train --resume --run-dir {quoted(run_dir)}")
    return 0 if summary.state in ("finished", "stopped", "running", "paused") else 1
