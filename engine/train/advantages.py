"""Group-relative advantages, as in TRL's GRPOTrainer, for both of its multi-objective aggregations.

sum_then_normalize (the default): reward = weighted sum of the reward functions (skipping None), then
advantage = (reward - mean of its group) / (std + 1e-4), with the std taken over the group
(scale_rewards="group"), over the whole batch ("batch"), or not divided at all ("none").
normalize_then_sum: each function's rewards are first normalised within the group ((r - mean) / (std +
1e-4)), the normalised values are weighted and summed, and that sum is normalised over the batch
(scale_rewards does not apply, as in TRL).

Stds are unbiased (Bessel) and NaN-aware: a None becomes NaN and is left out of the statistics; a
completion no reward function could score gets advantage 0.
"""
from __future__ import annotations

import math

import torch

from grpo_studio.engine.common.choices import MULTI_OBJECTIVE_AGGREGATIONS, SCALE_REWARDS
from grpo_studio.engine.common.groups import by_group, group_count, to_rows
from grpo_studio.engine.rewards.scoring import weighted_sum

EPS = 1e-4


def _nanstd(x: torch.Tensor, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    if dim is None:
        x, dim = x.reshape(-1), 0
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=keepdim).to(x.dtype)
    var = torch.nansum((x - mean) ** 2, dim=dim, keepdim=keepdim) / (count - 1).clamp(min=1)
    return var.sqrt()


def group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "group") -> torch.Tensor:
    """rewards [N] (N = prompts x group_size, each group contiguous) -> advantages [N]."""
    rewards = rewards.float()
    grouped = by_group(rewards, group_size)
    mean = to_rows(torch.nanmean(grouped, dim=1), group_size)
    advantages = rewards - mean
    if scale_rewards == "group":
        advantages = advantages / (to_rows(_nanstd(grouped, dim=1), group_size) + EPS)
    elif scale_rewards == "batch":
        advantages = advantages / (_nanstd(rewards) + EPS)
    elif scale_rewards != "none":
        raise ValueError(f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}, not {scale_rewards!r}")
    return torch.nan_to_num(advantages, nan=0.0)


def weighted_total(per_function: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[N, K] rewards (NaN = None) -> [N] weighted sums skipping NaN; NaN where every function gave None.
    Row by row through rewards.weighted_sum, the one definition of a completion's total (N is a step's
    completions: a few hundred rows, microseconds each)."""
    weight_list = weights.float().tolist()
    totals = [weighted_sum([None if math.isnan(v) else v for v in row], weight_list)
              for row in per_function.float().tolist()]
    return torch.tensor([math.nan if t is None else t for t in totals], dtype=torch.float32)


def aggregate_advantages(per_function: torch.Tensor, weights: torch.Tensor, group_size: int,
                         scale_rewards: str = "group",
                         aggregation: str = "sum_then_normalize") -> torch.Tensor:
    """per_function [N, K] (NaN where a function returned None), weights [K] -> advantages [N]."""
    group_count(per_function.shape[0], group_size)
    if aggregation == "sum_then_normalize":
        return group_advantages(weighted_total(per_function, weights), group_size, scale_rewards)
    if aggregation != "normalize_then_sum":
        raise ValueError(f"multi_objective_aggregation must be one of {', '.join(MULTI_OBJECTIVE_AGGREGATIONS)}, "
                         f"not {aggregation!r}")
    grouped = by_group(per_function.float(), group_size)
    mean = torch.nanmean(grouped, dim=1, keepdim=True)
    normalised = ((grouped - mean) / (_nanstd(grouped, dim=1, keepdim=True) + EPS)).view_as(per_function)
    summed = weighted_total(normalised, weights)
    advantages = (summed - torch.nanmean(summed)) / (_nanstd(summed) + EPS)
    return torch.nan_to_num(advantages, nan=0.0)

