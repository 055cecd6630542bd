"""The first rows and the columns of a dataset, for the preview table and the column mapping.

Small local JSONL / JSON / CSV files are read right here (instant, stdlib only); everything else — Parquet,
folders, hub ids in the cache — goes through `grpo-studio preview --json`, which uses the engine's own loader.
Both give the same shape: {columns, rows, num_rows, suggested: {prompt_column, question_column, answer_column}}.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from grpo_studio.engine.common.text import clip

PROMPT_NAMES = ("prompt", "messages", "conversation", "input", "instruction")
QUESTION_NAMES = ("question", "problem", "query", "task")
ANSWER_NAMES = ("answer", "solution", "target", "output", "label", "ground_truth", "final_answer")
QUICK_LIMIT = 50 * 1024 * 1024  # bigger files go to the CLI, which does not read them whole


class PreviewError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def quick_preview(path: str, rows: int = 8) -> dict | None:
    """The preview of a local .jsonl/.json/.csv file, or None when the CLI should do it."""
    file = Path(path).expanduser()
    if not file.is_file() or file.suffix.lower() not in (".jsonl", ".json", ".csv") \
            or file.stat().st_size > QUICK_LIMIT:
        return None
    try:
        records, total = _read(file, rows)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise PreviewError(f"cannot read {file.name}: {exc}", "is it valid JSON lines / JSON / CSV?") from exc
    if not records:
        raise PreviewError(f"{file.name} has no rows", "add at least one example")
    columns: list[str] = []
    for record in records:
        if not isinstance(record, dict):
            raise PreviewError(f"{file.name}: rows must be objects with named columns",
                               'write one object per line, e.g. {"question": "...", "answer": "..."}')
        columns += [c for c in record if c not in columns]
    return {"columns": columns, "rows": records[:rows], "num_rows": total, "suggested": suggest(columns)}


def _read(file: Path, rows: int) -> tuple[list, int]:
    suffix = file.suffix.lower()
    if suffix == ".csv":
        with open(file, newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
        return records[:rows], len(records)
    text = file.read_text(encoding="utf-8")
    if suffix == ".json" and text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # JSON lines saved as .json
        if isinstance(data, dict):  # {"train": [...]} or {"data": [...]}
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if isinstance(data, list):
            return data[:rows], len(data)
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines[:rows]], len(lines)


def suggest(columns: list[str]) -> dict:
    lower = {c.lower(): c for c in columns}

    def pick(names: tuple[str, ...]) -> str | None:
        return next((lower[n] for n in names if n in lower), None)

    prompt, question = pick(PROMPT_NAMES), pick(QUESTION_NAMES)
    return {"prompt_column": prompt if prompt or not question else None,
            "question_column": question if not prompt else None, "answer_column": pick(ANSWER_NAMES)}


def cell_text(value: object, limit: int = 160) -> str:
    """A table cell: chat message lists become 'role: content' lines, long text is cut."""
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        value = " | ".join(f"{m.get('role', '?')}: {m['content']}" for m in value)
    elif not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    return clip(" ".join(value.split()), limit)
