"""`grpo-studio pause RUN`: hold a run between steps (its memory stays allocated; `resume` continues it)."""
from __future__ import annotations

import argparse

from grpo_studio.engine.commands._control import add_run_argument, resolve, send

NAME = "pause"
HELP = "pause a running run between steps (continue it with `grpo-studio resume RUN`)"
ORDER = 33


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)


def run(args: argparse.Namespace) -> int:
    return send(resolve(args), "pause", "pausing {run} after its current step; continue with: "
                                        "grpo-studio resume {run}")
