"""`grpo-studio resume RUN`: continue a paused run. (A crashed or stopped run has no engine to resume:
start a new one on its folder with `grpo-studio train --resume --run-dir RUN`.)"""
from __future__ import annotations

import argparse

from grpo_studio.engine.commands._control import add_run_argument, resolve, send

NAME = "resume"
HELP = ("continue a paused run (a crashed or stopped run continues with "
        "`grpo-studio train --resume --run-dir RUN` instead)")
ORDER = 34


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)


def run(args: argparse.Namespace) -> int:
    return send(resolve(args), "resume", "{run} continues")
