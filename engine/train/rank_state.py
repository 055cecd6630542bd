"""What the loop's step reports and saves when several ranks train together: metrics over every rank's
completions, and every rank's RNG state in the checkpoint (rank 0 writes it; each rank restores its own).
Identity / no-ops in one process."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.rewards.scoring import RewardScores
from grpo_studio.engine.rollout.generation import Rollout
from grpo_studio.engine.train import ranks


def align_ranks(params: list, reseed: Callable[[], None], emit: Callable[..., Any]) -> None:
    """After the model loads: rank 0's trainable weights on every rank, then each rank's own RNG stream
    (`reseed`), so the ranks sample different completions from the same policy."""
    if ranks.world_size() == 1:
        return
    ranks.broadcast_parameters(params)
    reseed()
    emit("log", level="info", message=f"data parallel: {ranks.world_size()} ranks, each training "
                                      f"its share of every step's prompts")


def step_view(scores: RewardScores, rollout: Rollout) -> tuple[RewardScores, torch.Tensor, list[bool]]:
    """(scores, completion lengths, truncated flags) of the step's completions on every rank, in rank order."""
    lengths = rollout.completion_mask.sum(1).float()
    truncated = [] if rollout.truncated is None else rollout.truncated.tolist()
    if ranks.world_size() == 1:
        return scores, lengths, truncated
    parts = ranks.gather_objects((scores.total, scores.per_function, scores.failures, lengths.tolist(),
                                        truncated))
    total = [v for part in parts for v in part[0]]
    per_function = {name: [v for part in parts for v in part[1][name]] for name in scores.per_function}
    names = set().union(*(part[2] for part in parts))
    failures = {name: [v for part in parts for v in part[2].get(name, [False] * len(part[0]))] for name in names}
    lengths = torch.tensor([v for part in parts for v in part[3]], dtype=torch.float32)
    truncated = [v for part in parts for v in part[4]]
    return RewardScores(total=total, per_function=per_function, failures=failures), lengths, truncated


def global_update_metrics(loss: float, kl: float, clip_ratio: float, entropy: float,
                          tokens: float) -> tuple[float, float, float, float, float]:
    """One update's metrics over every rank. Each rank's loss is its share of the global loss times the world
    size (gradients are averaged), so the global loss is the ranks' mean; kl, clip ratio and entropy are
    token-weighted means, so each rank counts with its completion tokens."""
    world = ranks.world_size()
    if world == 1:
        return loss, kl, clip_ratio, entropy, tokens
    device = torch.device("cuda", torch.cuda.current_device()) \
        if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    values = torch.tensor([loss, kl * tokens, clip_ratio * tokens, entropy * tokens, tokens],
                          dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    loss, kl, clip_ratio, entropy, tokens = values.tolist()
    share = max(tokens, 1.0)
    return loss / world, kl / share, clip_ratio / share, entropy / share, tokens


def rank_checkpoint_state() -> dict:
    """Extra checkpoint fields: the world size and every rank's RNG state (empty in one process)."""
    if ranks.world_size() == 1:
        return {}
    return {"world_size": ranks.world_size(), "rng_ranks": ranks.gather_objects(ckpt.capture_rng())}


def restore_rank_rng(state: dict, path: Path) -> None:
    """After load_checkpoint (which restored rank 0's RNG): this rank's own RNG state. A checkpoint from a
    different number of ranks is refused: the prompts each rank sampled would not continue as they were."""
    saved = int(state.get("world_size", 1))
    world = ranks.world_size()
    if saved != world:
        raise ConfigError(f"{path.name} was written by a run on {saved} GPU(s); this resume runs on {world}",
                          f"resume with --gpus {saved} (the run continues exactly only on the same number)")
    if world > 1:
        ckpt.restore_rng(state["rng_ranks"][ranks.rank()])
