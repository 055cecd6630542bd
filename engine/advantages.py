"""Group-relative advantages, as in TRL's GRPOTrainer (sum-then-normalise).

advantage = (reward - mean of its group) / (std + 1e-4), with the std taken over the group
(scale_rewards="group"), over the whole batch ("batch"), or not divided at all ("none"). Stds are unbiased
(Bessel) and NaN-aware: a completion no reward function could score (NaN) is left out of its group's
statistics and gets advantage 0.
"""
from __future__ import annotations

import torch

EPS = 1e-4


def _nanstd(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        x, dim = x.reshape(-1), 0
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim).to(x.dtype)
    var = torch.nansum((x - mean) ** 2, dim=dim) / (count - 1).clamp(min=1)
    return var.sqrt()


def group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "group") -> torch.Tensor:
    """rewards [N] (N = prompts x group_size, each group contiguous) -> advantages [N]."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    rewards = rewards.float()
    grouped = rewards.view(-1, group_size)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    advantages = rewards - mean
    if scale_rewards == "group":
        advantages = advantages / (_nanstd(grouped, dim=1).repeat_interleave(group_size) + EPS)
    elif scale_rewards == "batch":
        advantages = advantages / (_nanstd(rewards) + EPS)
    elif scale_rewards != "none":
        raise ValueError(f"scale_rewards must be group, batch or none, not {scale_rewards!r}")
    return torch.nan_to_num(advantages, nan=0.0)
