"""The `group` event: one prompt's G completions side by side (each reward function's score, the advantage,
the length, whether it was cut off), best to worst, size-capped so an event stays small on the wire and in
events.jsonl whatever G and max_completion_length are."""
from __future__ import annotations

import math

import torch

from grpo_studio.engine.common.groups import group_rows

MAX_COMPLETIONS = 16  # a group of 64 shows its 8 best and 8 worst
MAX_CHARS = 2000  # per completion and prompt; the rest is cut with a note of how much


def cap_text(text: str, limit: int = MAX_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" […{len(text) - limit} more characters]"


def _order_key(row: dict) -> float:
    reward = row["reward"]
    return -math.inf if reward is None or math.isnan(reward) else reward


def group_fields(group: int, group_size: int, prompt: str, texts: list[str], per_function: dict[str, list],
                 totals: list, advantages: torch.Tensor | None, lengths: list[int],
                 truncated: list[bool]) -> dict:
    """The event's fields (besides step) for group number `group` of a scored, trained batch."""
    rows = []
    for i in group_rows(group, group_size):
        rows.append({"completion": cap_text(texts[i]), "reward": totals[i],
                     "rewards": {name: values[i] for name, values in per_function.items()},
                     "advantage": None if advantages is None else float(advantages[i]),
                     "length": int(lengths[i]), "truncated": bool(truncated[i]) if truncated else False})
    rows.sort(key=_order_key, reverse=True)
    if len(rows) > MAX_COMPLETIONS:
        half = MAX_COMPLETIONS // 2
        rows = rows[:half] + rows[-half:]
    return {"prompt": cap_text(prompt), "group_size": group_size, "completions": rows}
