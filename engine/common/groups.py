"""The layout of a GRPO batch, written once: each prompt's G completions (G = grpo.num_generations, the group
size) sit in consecutive rows, so row r belongs to prompt r // G and prompt p owns rows p*G .. p*G + G - 1.
Generation repeats the prompts into that layout, the rewards, advantages, diagnostics and events read it back
through these helpers. Torch-free: the row arguments may be ints, lists or integer tensors alike.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def group_count(rows: int, group_size: int) -> int:
    """How many prompts `rows` completions are; a count that does not split into groups is a bug upstream."""
    if rows % group_size:
        raise ValueError(f"{rows} rewards do not split into groups of {group_size}")
    return rows // group_size


def prompt_of(row: Any, group_size: int) -> Any:
    """The prompt (group) number of a completion row, or of each row of an integer tensor."""
    return row // group_size


def group_rows(group: int, group_size: int) -> range:
    """The completion rows of prompt number `group`."""
    return range(group * group_size, (group + 1) * group_size)


def per_completion(per_prompt: Iterable[T], group_size: int) -> list[T]:
    """One entry per completion row from one per prompt: each repeated G times in a row."""
    return [item for item in per_prompt for _ in range(group_size)]


def by_group(per_row: Any, group_size: int) -> Any:
    """A tensor of rows [N, ...] viewed as [prompts, G, ...], for statistics within each group."""
    return per_row.view(group_count(per_row.shape[0], group_size), group_size, *per_row.shape[1:])


def to_rows(per_group: Any, group_size: int) -> Any:
    """A tensor of one value per group [prompts, ...] back to one per completion row [N, ...]."""
    return per_group.repeat_interleave(group_size, dim=0)
