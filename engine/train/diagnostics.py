"""What a step's rewards say about the learning signal, as plain numbers for the metrics event. Torch-free.

The usual reasons a GRPO run does not learn are visible in one batch: groups in which every completion got
the same reward (advantage 0 everywhere: no gradient), completions cut at max_completion_length (the answer
never appears) and reward functions that never apply or never match. `step_signal` measures each of them
on the step's reward table; gui/learning_signal.py turns recent values into advice.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from grpo_studio.engine.common.groups import group_count, group_rows


def _share(flags: Sequence[bool]) -> float | None:
    return sum(bool(f) for f in flags) / len(flags) if flags else None


def flat_groups(totals: Sequence[float | None], group_size: int) -> list[bool]:
    """Per group: True when its scored completions all got the same reward (or fewer than two were scored),
    which makes every advantage in it 0."""
    flags = []
    for group in range(group_count(len(totals), group_size)):
        scored = [t for t in (totals[r] for r in group_rows(group, group_size)) if t is not None and not math.isnan(t)]
        flags.append(len(scored) < 2 or max(scored) - min(scored) <= 1e-9 * max(1.0, abs(max(scored))))
    return flags


def step_signal(totals: Sequence[float | None], group_size: int, per_function: Mapping[str, Sequence],
                truncated: Sequence[bool], failures: Mapping[str, Sequence[bool]] | None = None) -> dict:
    """Shares over one step's completions (each a fraction in 0..1, None when there is nothing to count):

    zero_spread_groups  groups whose rewards are all equal; zero_spread_reward: their mean reward
    truncated           completions that hit max_completion_length without ending
    rewards[name]       none: the function returned None (does not apply); failed: it failed on the sample;
                        zero: it scored 0 (for a pass/fail reward: the completion did not pass)
    """
    flat = flat_groups(totals, group_size)
    flat_values = [t for g, is_flat in enumerate(flat) if is_flat
                   for t in (totals[r] for r in group_rows(g, group_size)) if t is not None and not math.isnan(t)]
    failures = failures or {}
    rewards = {}
    for name, values in per_function.items():
        scored = [v for v in values if v is not None]
        rewards[name] = {"none": _share([v is None for v in values]),
                         "failed": _share(failures.get(name, [False] * len(values))),
                         "zero": _share([v == 0 for v in scored])}
    return {"zero_spread_groups": _share(flat),
            "zero_spread_reward": sum(flat_values) / len(flat_values) if flat_values else None,
            "truncated": _share(truncated),
            "rewards": rewards}


NGRAM = 4  # tokens; a completion stuck in a loop repeats its 4-grams, fluent text rarely does


def repeated_ngrams(completions: Sequence[Sequence[int]], n: int = NGRAM) -> float | None:
    """Mean over completions of the share of their token n-grams that repeat an earlier n-gram of the same
    completion (0 for one too short to have two n-grams); None for no completions."""
    shares = []
    for ids in completions:
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        shares.append(1 - len(set(grams)) / len(grams) if len(grams) > 1 else 0.0)
    return sum(shares) / len(shares) if shares else None
