"""Data parallel on the CPU: the demo trained as 2 ranks x 1 thread (torchrun, gloo) against 1 rank x 2
threads, alternated over --repeats runs each. Prints JSON: per contender the median and spread of the
steady-state seconds per step (from the events' timestamps, the first --warmup steps left out, so process
start and model load do not count) and of the whole command's wall time.

    python tests/benchmarks/bench_distributed.py [--steps 30] [--repeats 3] [--prompts-per-step 16]

The CPU is not the target (a GPU per rank is): this measures what the split costs or gains when ranks share
one machine's cores, and that the distributed path runs end to end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from grpo_studio.engine.common.config import save_config
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths

CONTENDERS = {"2 ranks x 1 thread": (2, 1), "1 rank x 2 threads": (1, 2)}


def run_once(config: Path, run_dir: Path, ranks: int, threads: int, warmup: int) -> dict:
    command = [sys.executable, "-P", "-m", "grpo_studio", "train", str(config), "--run-dir", str(run_dir),
               "--quiet", "--gpus", str(ranks)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONSAFEPATH": "1"}
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    times = [e["time"] for e in read_events(RunPaths(run_dir).events) if e["type"] == "progress"]
    steady = times[warmup:]
    per_step = (steady[-1] - steady[0]) / (len(steady) - 1) if len(steady) > 1 else float("nan")
    return {"s_per_step": per_step, "wall_s": wall}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": [round(v, 4) for v in values]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prompts-per-step", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the steady-state figure")
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    work.mkdir(parents=True, exist_ok=True)
    config = demo_config(steps=args.steps)
    config.batch.prompts_per_step = args.prompts_per_step
    config.checkpoint_every = 0
    config.log_samples_every = 0
    save_config(config, work / "config.yaml")

    results: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    for repeat in range(args.repeats):  # alternate, so a change in the machine's load hits both alike
        for name, (ranks, threads) in CONTENDERS.items():
            run_dir = work / f"{ranks}x{threads}-{repeat}"
            results[name].append(run_once(work / "config.yaml", run_dir, ranks, threads, args.warmup))
    report = {
        "benchmark": "distributed_cpu",
        "settings": {"steps": args.steps, "repeats": args.repeats, "prompts_per_step": args.prompts_per_step,
                     "num_generations": config.grpo.num_generations, "warmup_steps": args.warmup},
        "contenders": {name: {"s_per_step": summary([r["s_per_step"] for r in runs]),
                              "wall_s": summary([r["wall_s"] for r in runs])} for name, runs in results.items()},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    two, one = (report["contenders"][name]["s_per_step"]["median"] for name in CONTENDERS)
    report["speedup_2_ranks_over_2_threads"] = one / two if two else None
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
