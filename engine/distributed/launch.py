"""The runner's side of torchrun: join the process group, hand ranks > 0 to the worker, and give rank 0 the
shared control and the other ranks' errors. Everything is a no-op when the engine runs as one process."""
from __future__ import annotations

import os
from pathlib import Path

from grpo_studio.engine.common.errors import EXIT_CODES
from grpo_studio.engine.common.runs import RunPaths, write_status
from grpo_studio.engine.distributed import worker
from grpo_studio.engine.distributed.control import shared
from grpo_studio.engine.train import ranks

__all__ = ["join", "leave", "lost_a_rank", "peer_failure", "report_lost_rank", "run_other_rank", "shared"]
# What the collectives say when a peer process is gone (gloo and nccl word it differently)
_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "remote worker", "NCCL communicator")


def join(config, run_dir: Path) -> bool:
    """Join torchrun's process group when launched by it; True on the rank that owns the run folder."""
    if not ranks.launched_by_torchrun():
        return True
    if os.environ.get("RANK") == "0":  # before the rendezvous: no other rank can have failed yet
        worker.clear_failures(RunPaths(Path(run_dir)))
    ranks.init_from_env(config.device)
    return ranks.is_main()


def leave() -> None:
    ranks.shutdown()


def run_other_rank(config, run_dir: Path, *, resume: bool = False) -> int:
    return worker.run_worker(config, run_dir, resume=resume)


def peer_failure(paths: RunPaths) -> dict | None:
    return worker.peer_failure(paths) if ranks.world_size() > 1 else None


def lost_a_rank(error: BaseException) -> bool:
    """A collective failed because another rank is gone (killed, or its machine lost) without an error."""
    import torch

    if ranks.world_size() == 1:
        return False
    return isinstance(error, torch.distributed.DistError) or any(text in str(error) for text in _LOST_PEER)


def report_lost_rank(events, paths: RunPaths, error: BaseException) -> int:
    """An `error` event, but no `done` and the status `crashed`: like a killed single engine, the run
    continues with `grpo-studio train --resume` from its last checkpoint."""
    first_line = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    events.emit("error", kind="crash", message=f"another rank stopped without reporting an error (killed, "
                f"out of memory, or its machine went away): {first_line}",
                hint="resume the run (grpo-studio train --resume RUN_DIR with the same --gpus): it continues "
                     "from the last checkpoint")
    write_status(paths, state="crashed")
    return EXIT_CODES["crash"]
