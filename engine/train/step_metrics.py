"""The numbers a training step reports: one optimizer update's measurements and the reward statistics of its
metrics event (None where nothing was measured, never a made-up 0)."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch


class UpdateResult(NamedTuple):
    """What one optimizer update measured (the step reports the mean over its num_iterations updates)."""
    loss: float
    kl: float
    clip_ratio: float
    grad_norm: float
    lr: float
    entropy: float | None  # mean token entropy; measured in a step's first update only (the sampling policy)
    sampler_kl: float | None = None  # KL(sampler || training forward) per token, when the sampler differs
    sampler_capped: float | None = None  # share of tokens the sampler correction truncated or masked
    entropy_coef: float | None = None  # the entropy bonus's coefficient applied in this update


def mean_update(results: list[UpdateResult]) -> UpdateResult:
    def mean(values: list) -> Any:  # None only for the optional fields; the others are measured in every update
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    return UpdateResult(*(mean(list(values)) for values in zip(*results)))


def reward_tensor(values: list[float | None]) -> torch.Tensor:
    return torch.tensor([math.nan if v is None else float(v) for v in values], dtype=torch.float32)


def nan_mean(x: torch.Tensor) -> float | None:
    value = torch.nanmean(x).item()
    return None if math.isnan(value) else value


def nan_std(x: torch.Tensor) -> float | None:
    x = x[~torch.isnan(x)]
    return x.std().item() if x.numel() > 1 else (0.0 if x.numel() == 1 else None)


def reward_stats(values: list) -> dict:
    present = torch.tensor([float(v) for v in values if v is not None], dtype=torch.float32)
    return {"mean": nan_mean(present) if present.numel() else None, "std": nan_std(present)}
