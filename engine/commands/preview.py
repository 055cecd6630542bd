"""`grpo-studio preview`: the first rows of a dataset, its columns and a guess at the column mapping.

The GUI's dataset picker runs it with --json; errors then come as {"error": {kind, message, hint}} on
stdout with a nonzero exit code, so the picker can show them next to the path field.
"""
from __future__ import annotations

import argparse
import json

from grpo_studio.engine.common.text import clip

NAME = "preview"
HELP = "show the first rows and columns of a dataset (file, folder, cached hub id, or 'demo')"
ORDER = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, metavar="PATH",
                        help="a .jsonl/.json/.csv/.parquet file or folder, a cached hub id, or 'demo'")
    parser.add_argument("--split", default="train", help="split to read (default: train)")
    parser.add_argument("--rows", type=int, default=5, metavar="N", help="rows to show (default: 5)")
    parser.add_argument("--json", action="store_true", help="print JSON (what the GUI reads)")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.config import DatasetConfig
    from grpo_studio.engine.common.errors import StudioError
    from grpo_studio.engine.data.dataset import preview

    _quiet_datasets()
    try:
        result = preview(DatasetConfig(path=args.dataset, split=args.split), n=max(0, args.rows))
    except StudioError as error:
        if not args.json:
            raise
        print(json.dumps(error_json(error)))
        return error.exit_code
    print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else format_table(result))
    return 0


def error_json(error) -> dict:
    return {"error": {"kind": error.kind, "message": error.message, "hint": error.hint}}


def _quiet_datasets() -> None:
    """No 'Generating train split' bars: the GUI reads stdout, people read the table."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def format_table(result: dict, width: int = 30) -> str:
    columns = result["columns"]
    cells = [[_cell(row.get(c), width) for c in columns] for row in result["rows"]]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    guessed = ", ".join(f"{k}={v}" for k, v in result["suggested"].items() if v)
    lines.append(f"\n{result['num_rows']} rows; suggested mapping: {guessed or 'none (name the columns)'}")
    return "\n".join(lines)


def _cell(value, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return clip(" ".join(text.split()), width)
