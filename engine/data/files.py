"""Data files checked before `datasets` reads them, because its own errors name neither file nor line:
empty files, text that is not UTF-8 (a CSV saved as Latin-1), malformed JSON / JSONL records. Torch-free.
"""
from __future__ import annotations

import json
from pathlib import Path

from grpo_studio.engine.common.errors import DataError
from grpo_studio.engine.common.text import clip


def check_data_file(path: Path, fmt: str) -> None:
    """Raise DataError for a file `datasets` would fail on without saying where (fmt: json, csv, parquet)."""
    if path.stat().st_size == 0:
        raise DataError(f"{path} has no rows (the file is empty)", "point dataset.path at a file with data")
    if fmt == "json":
        check_json_file(path)
    elif fmt == "csv" and sum(1 for line in check_utf8(path).splitlines() if line.strip()) < 2:
        raise DataError(f"{path} has no rows (at most a header line)", "point dataset.path at a file with data")


def check_utf8(path: Path) -> str:
    """The file's text; a DataError naming the line and byte when it is not UTF-8 (pyarrow names neither)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})",
                        "save the file as UTF-8 (e.g. in a spreadsheet: 'CSV UTF-8'), or convert it with "
                        f"`iconv -f latin1 -t utf-8 {path.name}`") from None


def check_json_file(path: Path) -> None:
    """Raise DataError naming the file and line of the first malformed record (datasets' own error
    is a pyarrow trace without either)."""
    text = check_utf8(path)
    if path.suffix.lower() == ".json":
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as exc:
            first = text.lstrip().split("\n", 1)[0]
            if not _is_json_object(first):  # a real JSON document, broken at exc.lineno
                raise DataError(f"{path}, line {exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})",
                                "fix the JSON there (a list of objects, or one object per line)") from exc
        else:
            if not isinstance(whole, (list, dict)):
                raise DataError(f"{path}: expected a list of records, found a JSON {type(whole).__name__}",
                                "write a list of objects, or one object per line (JSONL)")
            if not whole:
                raise DataError(f"{path} has no records (an empty JSON {type(whole).__name__})",
                                "point dataset.path at a file with data")
            return
    if not text.strip():
        raise DataError(f"{path} has no rows (only blank lines)", "point dataset.path at a file with data")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: malformed JSON ({exc.msg}, column {exc.colno}): "
                            f"{clip(line, 80)}",
                            "fix or delete that line; each line must be one JSON object") from exc
        if not isinstance(value, dict):
            raise DataError(f"{path}, line {number}: a JSON {type(value).__name__}, not an object",
                            'each line must be one object like {"prompt": "...", "answer": "..."}')


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False
