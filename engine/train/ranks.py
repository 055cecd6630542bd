"""Data-parallel training on torch.distributed (launched by torchrun): the few collectives the loop needs.

Every helper is a no-op (or the identity) in one process, so the loop calls them unconditionally. The
split of work, exact against one process:
- each rank trains its share of the step's prompts (`shard`: a contiguous slice of the step's batch),
- rewards are gathered (`gather_rows`) so batch-level statistics (scale_rewards "batch", the
  normalize_then_sum aggregation) and the metrics see the whole step,
- per-token loss normalisers use the global completion-token count (`global_token_norm`),
- LoRA gradients are averaged (`average_gradients`) before clipping, so every rank steps the same optimizer
  on the same gradient.
"""
from __future__ import annotations

import datetime
import os
from typing import Any, TypeVar

import torch

from grpo_studio.engine.common.errors import ConfigError

# Collectives wait this long for a slow rank (a long generation, a checkpoint write) before failing.
TIMEOUT = datetime.timedelta(minutes=30)


def available() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    return torch.distributed.get_world_size() if available() else 1


def rank() -> int:
    return torch.distributed.get_rank() if available() else 0


def is_main() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init_from_env(device: str = "auto") -> None:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...):
    nccl on CUDA, gloo on the CPU. Does nothing outside torchrun or when already joined."""
    if available() or not launched_by_torchrun():
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)


def shutdown() -> None:
    if available():
        torch.distributed.destroy_process_group()


def check_divisible(prompts_per_step: int, world: int) -> None:
    """Each rank must get the same number of prompts; say which batch sizes would work."""
    if world <= 1 or prompts_per_step % world == 0:
        return
    below = prompts_per_step - prompts_per_step % world
    options = sorted({n for n in (below, below + world) if n > 0})
    raise ConfigError(f"batch.prompts_per_step = {prompts_per_step} does not split over {world} GPUs "
                      f"(each trains an equal share of the step's prompts)",
                      f"set batch.prompts_per_step to a multiple of {world}, e.g. "
                      + " or ".join(str(n) for n in options))


def check_config(config: Any) -> None:
    """What must hold for this run to split over the ranks (called before any weights load)."""
    world = world_size()
    check_divisible(config.batch.prompts_per_step, world)
    if world > 1 and config.grpo.dynamic_sampling:
        # each rank would refill its share on its own, drawing different numbers of batches
        raise ConfigError("grpo.dynamic_sampling is not supported with more than one GPU yet",
                          "turn grpo.dynamic_sampling off, or train on one GPU")


Rows = TypeVar("Rows", list, torch.Tensor)  # a list of prompt indices or a tensor of rows


def shard(items: Rows) -> Rows:
    """This rank's contiguous share of the step's prompts (the batch splits evenly: check_divisible)."""
    world = world_size()
    if world == 1:
        return items
    size = len(items) // world
    return items[rank() * size:(rank() + 1) * size]


def all_reduce_sum(value: float) -> float:
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_device())
    torch.distributed.all_reduce(tensor)
    return float(tensor.item())


def global_token_norm(local_tokens: float) -> float:
    """The per-token loss normaliser for this rank's micro-batches: the global token count / world size.
    Gradients are averaged over ranks, so dividing local token sums by this gives sum / global tokens."""
    return max(all_reduce_sum(local_tokens), 1.0) / world_size()


def gather_rows(table: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of `table` (same shape on each rank), in rank order."""
    world = world_size()
    if world == 1:
        return table
    local = table.to(_device())
    pieces = [torch.empty_like(local) for _ in range(world)]
    torch.distributed.all_gather(pieces, local)
    return torch.cat(pieces).to(table.device)


def gather_objects(value: Any) -> list:
    """[value of rank 0, value of rank 1, ...] on every rank (picklable values)."""
    if world_size() == 1:
        return [value]
    out: list = [None] * world_size()
    torch.distributed.all_gather_object(out, value)
    return out


def broadcast_object(value: Any) -> Any:
    """Rank 0's value on every rank."""
    if world_size() == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Mean of every rank's gradients, in one flat all-reduce (missing gradients count as zeros)."""
    world = world_size()
    if world == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).to(p.dtype)
        offset += n


def broadcast_parameters(params: list[torch.nn.Parameter]) -> None:
    """Rank 0's trainable weights everywhere (ranks start identical whatever their RNG did)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for p in params:
            torch.distributed.broadcast(p.data, src=0)


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def _device() -> torch.device:
    if available() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
