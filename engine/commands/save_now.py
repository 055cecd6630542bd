"""`grpo-studio save-now RUN`: write a checkpoint after the current step, then keep training."""
from __future__ import annotations

import argparse

from grpo_studio.engine.commands._control import add_run_argument, resolve, send

NAME = "save-now"
HELP = "save a checkpoint of a running run after its current step (training goes on)"
ORDER = 35


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_argument(parser)


def run(args: argparse.Namespace) -> int:
    return send(resolve(args), "save_now", "{run} saves a checkpoint after its current step")
