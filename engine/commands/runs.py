"""`grpo-studio runs`: the run history with each run's state, progress and reward."""
from __future__ import annotations

import argparse
import json
import time

NAME = "runs"
HELP = "list runs with their state (running / paused / finished / stopped / crashed / failed / damaged)"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", help="runs folder (default: the app's; or $GRPO_STUDIO_RUNS_DIR)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _fmt_reward(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from grpo_studio.engine.common.runs import default_runs_dir, list_runs

    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    summaries = list_runs(runs_dir)
    if args.json:
        print(json.dumps([{**vars(s), "path": str(s.path)} for s in summaries], indent=1))
        return 0
    if not summaries:
        print(f"no runs in {runs_dir} yet: start one with `grpo-studio train --demo` or the app")
        return 0
    header = ("RUN", "STATE", "MODEL", "STEP", "REWARD", "BEST", "STARTED")
    rows = [(s.name, s.state, s.model[-28:], f"{s.step}/{s.total_steps or '?'}", _fmt_reward(s.reward),
             _fmt_reward(s.best_reward),
             time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started)) if s.started else "-") for s in summaries]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
    for summary in summaries:
        if summary.damage:
            print(f"{summary.name}: this run is damaged: {summary.damage}")
    crashed = [s.path for s in summaries if s.state == "crashed"]
    if crashed:
        from grpo_studio.engine.common.shell_args import quoted

        print(f"\ncrashed runs continue with: grpo-studio train --resume --run-dir {quoted(crashed[0])}")
    return 0
