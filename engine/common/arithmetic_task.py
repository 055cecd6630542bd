"""Generated arithmetic questions for the real-model starter, with a fixed held-out set. Torch-free.

Every question of a kind ("What is 7 + 5?", "What is 6 times 4?") is enumerated, shuffled with a fixed seed
and split once: the held-out questions are never trained on, so their accuracy says whether the model
learned the skill rather than the answers. The files are plain jsonl (`question`, `answer`), the format any
user dataset has, so training and evaluation read them like any other data.

    train, held_out = write_task(folder, "easy")   # two .jsonl files, rewritten only when missing
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from grpo_studio.engine.common.errors import ConfigError

HELD_OUT = 64  # questions kept out of training
SPLIT_SEED = 20261207  # fixed: the split is the same on every machine and in every run


def _single_digit() -> list[dict]:
    """Single-digit sums and times tables (SmolLM2-135M-Instruct: ~0.23 greedy before training)."""
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(10) for b in range(10)]
    rows += [{"question": f"What is {a} times {b}?", "answer": str(a * b)} for a in range(10) for b in range(10)]
    return rows


def _two_digit() -> list[dict]:
    """Two-digit sums and differences (base ~0.03): the harder task."""
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(10, 100, 3)
            for b in range(10, 100, 7)]
    rows += [{"question": f"What is {a} - {b}?", "answer": str(a - b)} for a in range(10, 100, 3)
             for b in range(10, 100, 7) if a >= b]
    return rows


TASKS = {"easy": _single_digit, "two_digit": _two_digit}


def questions(task: str = "easy") -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows) of a task, always the same split."""
    if task not in TASKS:
        raise ConfigError(f"unknown arithmetic task {task!r}", f"choose one of {', '.join(TASKS)}")
    rows = TASKS[task]()
    random.Random(SPLIT_SEED).shuffle(rows)
    return rows[HELD_OUT:], rows[:HELD_OUT]


def write_task(folder: Path, task: str = "easy") -> tuple[Path, Path]:
    """Write `<task>-train.jsonl` and `<task>-heldout.jsonl` into `folder` (when missing); returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"{task}-train.jsonl", folder / f"{task}-heldout.jsonl"
    for path, rows in zip(paths, questions(task)):
        text = "".join(json.dumps(row) + "\n" for row in rows)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
    return paths
