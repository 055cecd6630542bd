"""The optimizer and Hugging Face's learning-rate schedules."""
from __future__ import annotations

import math
from typing import Any

import torch

from grpo_studio.engine.common.config import TrainConfig


def build_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    optim = config.optim
    kwargs: dict[str, Any] = dict(lr=optim.learning_rate, betas=(optim.adam_beta1, optim.adam_beta2),
                                  weight_decay=optim.weight_decay)
    if optim.optimizer == "adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Hugging Face's schedules: linear warmup from 0, then constant, linear decay to 0, or cosine to 0."""
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))
