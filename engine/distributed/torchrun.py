"""`grpo-studio train ... --gpus N`: start the engine as N ranks per machine under torchrun
(torch.distributed.run), passing torchrun's own multi-node flags through. Torch-free until torchrun runs.

One machine: `--standalone` (torchrun picks a free local rendezvous port). Several: every machine runs the
same command with its `--node-rank`, the same `--nnodes` and `--rdzv-endpoint HOST:PORT` (c10d rendezvous).
This process waits for torchrun; a Ctrl-C (or SIGTERM) asks rank 0 to stop the run at the next step
boundary for every rank, a second one ends torchrun.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from grpo_studio.engine.common.errors import ConfigError

MULTI_NODE_FLAGS = ("nnodes", "node_rank", "rdzv_endpoint", "rdzv_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus", type=int, metavar="N", help="train on N GPUs of this machine, one rank each "
                                                                "(torchrun; default: the config's gpus)")
    parser.add_argument("--nnodes", type=int, metavar="M", help="torchrun: number of machines (with --gpus)")
    parser.add_argument("--node-rank", type=int, metavar="R", help="torchrun: this machine's number, 0..M-1")
    parser.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="torchrun: where the machines meet "
                                                                     "(a port on node 0)")
    parser.add_argument("--rdzv-id", metavar="ID", help="torchrun: the job's id, the same on every machine")


def ranks_per_node(args: argparse.Namespace, config) -> int:
    gpus = args.gpus if args.gpus is not None else getattr(config, "gpus", 1)
    if gpus < 1:
        raise ConfigError(f"--gpus {gpus}: the number of GPUs must be at least 1")
    if gpus == 1 and any(getattr(args, flag) is not None for flag in MULTI_NODE_FLAGS) and (args.nnodes or 1) == 1:
        raise ConfigError("torchrun's multi-node flags need --gpus N", "add --gpus N (ranks per machine)")
    return gpus


def torchrun_command(args: argparse.Namespace, gpus: int, engine_argv: list[str]) -> list[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(gpus)]
    nnodes = args.nnodes or 1
    if nnodes == 1 and args.rdzv_endpoint is None:
        command.append("--standalone")
    else:
        if args.rdzv_endpoint is None or args.node_rank is None:
            raise ConfigError("a run on several machines needs --node-rank and --rdzv-endpoint HOST:PORT",
                              "see the README's multi-GPU section for a two-machine example")
        command += ["--nnodes", str(nnodes), "--node-rank", str(args.node_rank), "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", args.rdzv_endpoint, "--rdzv-id", args.rdzv_id or "grpo-studio"]
    return command + ["-m", "grpo_studio", *engine_argv]


def check_batch(config, world: int) -> None:
    from grpo_studio.engine.train.ranks import check_divisible  # torch, but only once torchrun is wanted

    check_divisible(config.batch.prompts_per_step, world)


def launch(args: argparse.Namespace, job, gpus: int, engine_argv: list[str]) -> int:
    """Run torchrun with `grpo-studio *engine_argv` as every rank; returns torchrun's exit code."""
    check_batch(job.config, gpus * (args.nnodes or 1))
    command = torchrun_command(args, gpus, engine_argv)
    # -P for the ranks too: a source checkout's top-level kernels/ must not shadow Hugging Face's `kernels`
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    Path(job.run_dir).mkdir(parents=True, exist_ok=True)
    # torchrun gets its own process group: a Ctrl-C here becomes one `stop` for rank 0 (all ranks stop at the
    # same step, with a checkpoint) instead of signals racing through torchrun and every rank at once
    process = subprocess.Popen(command, env=env, start_new_session=sys.platform != "win32")
    handlers = {signum: signal.signal(signum, _stopper(process, Path(job.run_dir)))
                for signum in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if signum is not None}
    try:
        return process.wait()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _stopper(process: subprocess.Popen, run_dir: Path):
    """First signal: ask rank 0 through the socket to stop after this step; a second (or no socket): end
    torchrun, which ends every rank."""
    asked: list[int] = []

    def handler(signum, frame) -> None:
        if not asked:
            asked.append(signum)
            try:
                from grpo_studio.engine.common.client import send_command

                send_command(run_dir, "stop", timeout=30.0)  # a busy rank 0 may answer slowly
                print("\nstopping after this step (saving a checkpoint); Ctrl-C again to abort", flush=True)
                return
            except Exception:  # noqa: BLE001 - no engine socket yet (or on another machine): end torchrun
                pass
        process.send_signal(signal.SIGTERM)

    return handler
