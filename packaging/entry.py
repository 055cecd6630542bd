"""Entry point of the frozen bundle: one executable serves as the app and as the engine.

The GUI starts engines as `<this executable> train ...` (grpo_studio.engine.common.launcher.engine_command checks
sys.frozen), so the same argv routing as the `grpo-studio` console script applies here."""
import multiprocessing
import sys

from grpo_studio.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
