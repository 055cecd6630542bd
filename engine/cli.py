"""Engine-side command line: `grpo-studio <command> ...` for every command but the GUI.

Each command is a module in `grpo_studio.engine.commands` with `NAME`, `HELP`, `ORDER`,
`add_arguments(parser)` and `run(args) -> int`. Modules are found by listing the package, so adding a
command never touches this file. Command modules import torch only inside `run`, so `--help` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from grpo_studio import __version__
from grpo_studio.engine import commands
from grpo_studio.engine.common.errors import StudioError


def _command_modules() -> list:
    found = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo-studio",
        description="Train reasoning models with GRPO on one home GPU. Without a command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"grpo-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("gui", help="open the desktop app (the default)")
    for module in _command_modules():
        command_parser = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except StudioError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
