"""Dynamic sampling (DAPO): keep only groups whose rewards differ, refill the step with fresh prompts.

A group in which every completion got the same reward has advantage 0 everywhere and adds nothing to the
gradient. With dynamic sampling the step draws further batches of prompts (the sampler's next batches, so
the order stays deterministic and a checkpoint's sampler position and RNG state replay it exactly) until
`prompts_per_step` groups with signal are found or `max_resample_times` extra rounds are spent; a step that
is still short is topped up with flat groups in the order they came, so the batch size never changes.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from grpo_studio.engine.common.groups import group_rows
from grpo_studio.engine.rewards.scoring import RewardScores
from grpo_studio.engine.rollout.generation import Rollout
from grpo_studio.engine.train.diagnostics import flat_groups


@dataclass
class ScoredBatch:
    indices: list[int]  # dataset index of each group's prompt
    rollout: Rollout  # group_size completions per prompt, each group contiguous
    scores: RewardScores


@dataclass
class ResampleStats:
    rounds: int = 0  # extra generation rounds beyond the first
    dropped_groups: int = 0  # flat groups left out of the batch
    flat_groups_kept: int = 0  # flat groups used to keep the batch size after the last round

    def as_dict(self) -> dict:
        return {"rounds": self.rounds, "dropped_groups": self.dropped_groups,
                "flat_groups_kept": self.flat_groups_kept}


def fill_with_signal(draw: Callable[[], ScoredBatch], prompts_per_step: int, group_size: int,
                     max_resample_times: int, pad_id: int) -> tuple[ScoredBatch, list[ScoredBatch], ResampleStats]:
    """Draw batches until `prompts_per_step` groups have reward spread (at most 1 + max_resample_times
    draws). Returns the training batch, every batch drawn (for the step's diagnostics) and the counts."""
    drawn: list[ScoredBatch] = []
    keep: list[tuple[int, int]] = []  # (batch number, group number)
    flat: list[tuple[int, int]] = []
    stats = ResampleStats()
    while True:
        batch = draw()
        drawn.append(batch)
        for group, is_flat in enumerate(flat_groups(batch.scores.total, group_size)):
            (flat if is_flat else keep).append((len(drawn) - 1, group))
        if len(keep) >= prompts_per_step or stats.rounds >= max_resample_times:
            break
        stats.rounds += 1
    chosen = keep[:prompts_per_step]
    stats.flat_groups_kept = max(0, prompts_per_step - len(chosen))
    chosen += flat[:stats.flat_groups_kept]
    stats.dropped_groups = len(flat) - stats.flat_groups_kept
    chosen.sort()  # keep the order the groups were generated in
    return concat_groups(drawn, chosen, group_size, pad_id), drawn, stats


def concat_groups(batches: list[ScoredBatch], chosen: list[tuple[int, int]], group_size: int,
                  pad_id: int) -> ScoredBatch:
    """One batch of the chosen (batch number, group number) groups; prompts stay left-padded and
    completions right-padded to the widest of them."""
    if len(batches) == 1 and chosen == [(0, g) for g in range(len(batches[0].indices))]:
        return batches[0]
    rows = [(b, r) for b, g in chosen for r in group_rows(g, group_size)]
    prompt_width = max(batches[b].rollout.prompt_ids.shape[1] for b, _ in chosen)
    completion_width = max(batches[b].rollout.completion_ids.shape[1] for b, _ in chosen)

    def stack(field: str, width: int, value: int, left: bool) -> torch.Tensor:
        pieces = []
        for b, r in rows:
            row = getattr(batches[b].rollout, field)[r:r + 1]
            missing = width - row.shape[1]
            pieces.append(nn.functional.pad(row, (missing, 0) if left else (0, missing), value=value))
        return torch.cat(pieces)

    truncated = [batches[b].rollout.truncated for b, _ in chosen]
    flags = {b: t for (b, _), t in zip(chosen, truncated) if t is not None}
    rollout = Rollout(stack("prompt_ids", prompt_width, pad_id, True), stack("prompt_mask", prompt_width, 0, True),
                      stack("completion_ids", completion_width, pad_id, False),
                      stack("completion_mask", completion_width, 0, False),
                      [batches[b].rollout.texts[r] for b, r in rows],
                      None if any(t is None for t in truncated)
                      else torch.stack([flags[b][r] for b, r in rows]),
                      sampling_logps=None if any(batches[b].rollout.sampling_logps is None for b, _ in chosen)
                      else stack("sampling_logps", completion_width, 0, False))
    names = list(batches[0].scores.per_function)
    scores = RewardScores(
        total=[batches[b].scores.total[r] for b, r in rows],
        per_function={n: [batches[b].scores.per_function[n][r] for b, r in rows] for n in names},
        failures={n: [batches[b].scores.failures.get(n, [False] * batches[b].rollout.size)[r] for b, r in rows]
                  for n in set().union(*(batch.scores.failures for batch in batches))})
    return ScoredBatch([batches[b].indices[g] for b, g in chosen], rollout, scores)
