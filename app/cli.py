"""The `grpo-studio` entry point: the desktop app by default, engine commands otherwise.

This module sits above both layers, so it may route to the GUI (Qt) or the engine (torch) without either
importing the other. Heavy imports happen only inside the branch that needs them.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] == "gui":
        from grpo_studio.gui.app import main as gui_main

        return gui_main(argv[1:])
    from grpo_studio.engine.cli import main as engine_main

    return engine_main(argv)


if __name__ == "__main__":  # `python -m grpo_studio.cli`, as `python -m grpo_studio`
    raise SystemExit(main())
