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
from grpo_studio.engine.common.errors import ConfigError, StudioError


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
    except BrokenPipeError:  # `grpo-studio runs | head -2`: the reader took what it wanted
        _quiet_stdout()
        return 141  # as a shell reports a command ended by SIGPIPE
    except OSError as error:
        usage = path_error(error)
        if usage is None:
            raise
        print(f"error: {usage.message}\nhint: {usage.hint}", file=sys.stderr)
        return usage.exit_code


def path_error(error: OSError) -> StudioError | None:
    """An OSError about a path the user gave (too long, not allowed, not there) as a message, not a
    traceback; None for anything else (a bug keeps its traceback)."""
    import errno

    if not error.filename:
        return None
    hints = {errno.ENAMETOOLONG: "a file or folder name may be at most 255 bytes: choose a shorter name",
             errno.EACCES: "choose a folder you can write to (for example under your home folder)",
             errno.EPERM: "choose a folder you can write to (for example under your home folder)",
             errno.EROFS: "choose a folder on a disk you can write to",
             errno.ENOENT: "check the path (system folders such as /proc and /sys cannot hold runs)",
             errno.ENOTDIR: "check the path: a part of it is a file, not a folder"}
    if error.errno not in hints:
        return None
    return ConfigError(f"cannot use {error.filename}: {error.strerror}", hints[error.errno])


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail on the closed pipe too."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
