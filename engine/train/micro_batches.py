"""A step's rollout cut into micro-batches for gradient accumulation: each holds its rows' prompt + completion
ids trimmed to the columns that carry a token, and its share of the whole batch's loss, so the micro-batches'
weighted losses add up to the full-batch loss."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from grpo_studio.engine.rollout.generation import Rollout


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [b, P + C] prompt (left-padded) + completion (right-padded), trimmed
    attention_mask: torch.Tensor
    completion_ids: torch.Tensor  # [b, C]
    completion_mask: torch.Tensor  # [b, C]
    advantages: torch.Tensor  # [b]
    weight: float  # share of the whole batch's loss (so micro-batches add up to the full-batch loss)
    old_logps: torch.Tensor | None = None
    ref_logps: torch.Tensor | None = None
    sampling_logps: torch.Tensor | None = None  # the sampler's own log-probs, when it differs from training


def split_micro_batches(rollout: Rollout, mask: torch.Tensor, advantages: torch.Tensor, size: int,
                        per_token: bool, tokens: float) -> list[MicroBatch]:
    """Rows [start, start + size) of the rollout in turn; `mask` the completion tokens the loss counts,
    `tokens` their count over every rank (the per-token loss types' normaliser)."""
    total = rollout.size
    out = []
    for start in range(0, total, size):
        rows = slice(start, min(start + size, total))
        p_ids, p_mask = rollout.prompt_ids[rows], rollout.prompt_mask[rows]
        c_ids, c_mask = rollout.completion_ids[rows], mask[rows]
        first = int(p_mask.any(0).long().argmax())  # drop all-padding columns on either side
        width = max(1, int(c_mask.sum(1).max()))
        p_ids, p_mask, c_ids, c_mask = p_ids[:, first:], p_mask[:, first:], c_ids[:, :width], c_mask[:, :width]
        weight = c_mask.sum().item() / tokens if per_token else (rows.stop - rows.start) / total
        sampling = None if rollout.sampling_logps is None else rollout.sampling_logps[rows][:, :width]
        out.append(MicroBatch(torch.cat([p_ids, c_ids], 1), torch.cat([p_mask, c_mask], 1), c_ids, c_mask,
                              advantages[rows], weight, sampling_logps=sampling))
    return out
