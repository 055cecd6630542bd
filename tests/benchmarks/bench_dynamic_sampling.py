"""Benchmark: dynamic sampling (DAPO) on vs off on a task where most groups start all-zero, same wall time.

The task is the built-in demo on a harder split: the prompts the untrained demo model answers correctly at
most `--hard-max-correct` times in `--probe-generations` samples (its accuracy there starts near 0, so most
groups of 8 get identical rewards and teach nothing), with math_correct as the only reward. Each contender
trains for the same `--seconds` of wall time (model loading excluded) on each seed; contenders alternate
within a seed so machine noise hits both alike. The end is measured the same way for both: the mean
math_correct over `--eval-generations` samples per hard prompt from the final adapter (fixed sampling seed).

    python tests/benchmarks/bench_dynamic_sampling.py                      # 3 seeds x 2 x 20 s on the CPU
    python tests/benchmarks/bench_dynamic_sampling.py --seconds 60 --seeds 5

Prints one JSON object: per contender the final reward per seed, median and spread, steps done, extra
generation rounds, the split's size and library versions.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from grpo_studio.engine.common.config import RewardSpec
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.demo import demo_config, demo_task_path
from grpo_studio.engine.train.loop import Trainer, seed_everything
from grpo_studio.engine.common.reward_functions import math_correct
from grpo_studio.engine.rollout.generation import generate
from grpo_studio.engine.rollout.sampling import SamplingParams
from grpo_studio.engine.common.runs import RunPaths


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="training wall time per run")
    p.add_argument("--seeds", type=int, default=3, help="seeds (each runs both contenders)")
    p.add_argument("--probe-generations", type=int, default=16, help="samples per prompt to find hard ones")
    p.add_argument("--hard-max-correct", type=int, default=1, help="a prompt is hard with at most this many "
                                                                   "correct probe samples")
    p.add_argument("--eval-generations", type=int, default=16, help="samples per hard prompt at the end")
    p.add_argument("--max-resample-times", type=int, default=3)
    p.add_argument("--prompts-per-step", type=int, default=4)
    return p.parse_args(argv)


class Deadline(Control):
    """Stops the loop once `seconds` have passed since `start()`."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.started = seconds, None

    def start(self) -> None:
        self.started = time.perf_counter()

    @property
    def stop_requested(self) -> bool:
        return super().stop_requested or (self.started is not None
                                          and time.perf_counter() - self.started >= self.seconds)


def base_config(task: Path | None, args: argparse.Namespace, seed: int, dynamic: bool):
    config = demo_config(steps=100_000)  # the deadline ends the run
    if task is not None:
        config.dataset.path = str(task)
    config.rewards = [RewardSpec("math_correct", 1.0)]
    config.seed, config.checkpoint_every, config.log_samples_every = seed, 0, 0
    config.batch.prompts_per_step = args.prompts_per_step
    config.grpo.dynamic_sampling, config.grpo.max_resample_times = dynamic, args.max_resample_times
    return config


def accuracy_per_prompt(trainer: Trainer, examples: list, generations: int, seed: int) -> list[float]:
    seed_everything(seed)
    grpo = trainer.config.grpo
    rollout = generate(trainer.model, trainer.tokenizer, [e.prompt_ids for e in examples],
                       num_generations=generations, max_completion_length=grpo.max_completion_length,
                       sampling=SamplingParams.from_grpo(grpo), backend=grpo.generation_backend,
                       generation_dtype=grpo.generation_dtype, device=trainer.device)
    scores = math_correct(None, rollout.texts, answer=[e.columns["answer"] for e in examples
                                                       for _ in range(generations)])
    return [sum(scores[i * generations:(i + 1) * generations]) / generations for i in range(len(examples))]


def hard_split(args: argparse.Namespace, folder: Path) -> Path:
    trainer = Trainer(base_config(None, args, 0, False), RunPaths(folder / "probe"), lambda *a, **k: None)
    trainer.setup()
    accuracy = accuracy_per_prompt(trainer, trainer.examples, args.probe_generations, seed=1234)
    rows = [json.loads(line) for line in demo_task_path().read_text().splitlines() if line.strip()]
    limit = args.hard_max_correct / args.probe_generations + 1e-9
    hard = [row for row, a in zip(rows, accuracy) if a <= limit]
    path = folder / "hard.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in hard))
    return path


def train_and_measure(task: Path, args: argparse.Namespace, seed: int, dynamic: bool, folder: Path) -> dict:
    metrics: list[dict] = []

    def emit(kind: str, **fields) -> None:
        if kind == "metrics":
            metrics.append(fields)

    control = Deadline(args.seconds)
    trainer = Trainer(base_config(task, args, seed, dynamic), RunPaths(folder), emit, control)
    trainer.setup()
    control.start()
    trainer.train()
    wall = time.perf_counter() - control.started
    final = accuracy_per_prompt(trainer, trainer.examples, args.eval_generations, seed=4321)
    rounds = sum((m["signal"].get("dynamic_sampling") or {}).get("rounds", 0) for m in metrics)
    return {"final_reward": sum(final) / len(final), "steps": trainer.step, "wall_s": round(wall, 2),
            "extra_generation_rounds": rounds,
            "zero_spread_groups_first_5_steps": _mean([m["signal"]["zero_spread_groups"] for m in metrics[:5]])}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _summary(runs: list[dict]) -> dict:
    finals = [r["final_reward"] for r in runs]
    return {"final_reward_median": statistics.median(finals), "final_reward_min": min(finals),
            "final_reward_max": max(finals), "runs": runs}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        task = hard_split(args, folder)
        split_size = sum(1 for _ in task.open())
        runs: dict[str, list[dict]] = {"dynamic_sampling": [], "plain": []}
        for seed in range(args.seeds):
            order = ["dynamic_sampling", "plain"] if seed % 2 == 0 else ["plain", "dynamic_sampling"]
            for name in order:
                result = train_and_measure(task, args, seed, name == "dynamic_sampling", folder / f"{name}-{seed}")
                runs[name].append({"seed": seed, **result})
    import transformers

    out = {"benchmark": "dynamic_sampling", "seconds_per_run": args.seconds, "seeds": args.seeds,
           "hard_split_prompts": split_size, "probe": {"generations": args.probe_generations,
                                                      "max_correct": args.hard_max_correct},
           "contenders": {name: _summary(r) for name, r in runs.items()},
           "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                        "transformers": transformers.__version__}}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
