"""The runner's side of torchrun: join the process group, hand ranks > 0 to the worker, and give rank 0 the
shared control and the other ranks' errors. Everything is a no-op when the engine runs as one process."""
from __future__ import annotations

import os
from pathlib import Path

from grpo_studio.engine import distributed, worker
from grpo_studio.engine.distributed_control import shared
from grpo_studio.engine.runs import RunPaths

__all__ = ["join", "leave", "peer_failure", "run_other_rank", "shared"]


def join(config, run_dir: Path) -> bool:
    """Join torchrun's process group when launched by it; True on the rank that owns the run folder."""
    if not distributed.launched_by_torchrun():
        return True
    if os.environ.get("RANK") == "0":  # before the rendezvous: no other rank can have failed yet
        worker.clear_failures(RunPaths(Path(run_dir)))
    distributed.init_from_env(config.device)
    return distributed.is_main()


def leave() -> None:
    distributed.shutdown()


def run_other_rank(config, run_dir: Path, *, resume: bool = False) -> int:
    return worker.run_worker(config, run_dir, resume=resume)


def peer_failure(paths: RunPaths) -> dict | None:
    return worker.peer_failure(paths) if distributed.world_size() > 1 else None
