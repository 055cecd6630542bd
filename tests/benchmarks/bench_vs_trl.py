"""GRPO Studio's engine vs TRL's GRPOTrainer on the same tiny model, data, rewards and settings (CPU).

    .venv/bin/python tests/benchmarks/bench_vs_trl.py [--steps 30] [--warmup 3] [--threads 1]

Each trainer runs in its own fresh subprocess (so import footprints and peak RSS are its own): the demo model
and task, the demo's rewards (math_correct + the format reward, same weights), G=8, 16 prompts per step,
completions up to 6 tokens, LoRA r=16 / alpha=32 on all linear layers, AdamW at the demo's LR with the same
warmup, no KL term, DAPO loss, group-scaled advantages, no gradient checkpointing, the same CPU thread count.
Step time is the mean interval between consecutive step ends (everything a step costs: generation, rewards,
update, logging) after `--warmup` steps; peak RSS is the process's high-water mark.
Prints one JSON object: {engine: {...}, trl: {...}, ratios: {step_time, peak_rss}, goal: {...}}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = {"step_time": 1.0, "peak_rss": 0.7}


def bench_config(steps: int):
    from grpo_studio.engine.demo import demo_config

    config = demo_config(steps=steps)
    config.checkpoint_every = 0  # TRL saves nothing either (the engine's final save comes after the last step)
    config.log_samples_every = 0
    return config


def run_engine_child(steps: int) -> dict:
    from grpo_studio.engine.events import read_events
    from grpo_studio.engine.runner import run_engine
    from grpo_studio.engine.runs import RunPaths

    with tempfile.TemporaryDirectory() as tmp:
        run_engine(bench_config(steps), Path(tmp) / "run", quiet=True)
        events = list(read_events(RunPaths(Path(tmp) / "run").events))
    ends = [e["time"] for e in events if e["type"] == "progress"]
    rewards = [e["reward"] for e in events if e["type"] == "metrics"]
    return {"step_times": [b - a for a, b in zip(ends, ends[1:])], "rewards": rewards}


def run_trl_child(steps: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo_studio.engine.demo import demo_model_dir, demo_task_path
    from grpo_studio.engine.rewards import load_reward_functions

    config = bench_config(steps)
    rows = [json.loads(line) for line in demo_task_path().read_text().splitlines()]
    rewards = load_reward_functions(config.rewards, max_completion_length=config.grpo.max_completion_length)
    tokenizer = AutoTokenizer.from_pretrained(str(demo_model_dir()))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(demo_model_dir()), dtype=torch.float32)
    marks: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    g, o = config.grpo, config.optim
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, max_steps=steps, seed=config.seed, use_cpu=True, bf16=False, fp16=False,
            per_device_train_batch_size=config.batch.prompts_per_step * g.num_generations,
            num_generations=g.num_generations, max_completion_length=g.max_completion_length,
            temperature=g.temperature, top_p=g.top_p, top_k=0, beta=g.beta, epsilon=g.epsilon_low,
            epsilon_high=g.epsilon_high, loss_type=g.loss_type, scale_rewards=g.scale_rewards,
            reward_weights=[r.weight for r in rewards], learning_rate=o.learning_rate,
            lr_scheduler_type="constant_with_warmup", warmup_steps=o.warmup_steps, max_grad_norm=o.max_grad_norm,
            adam_beta1=o.adam_beta1, adam_beta2=o.adam_beta2, weight_decay=o.weight_decay,
            gradient_checkpointing=False, logging_steps=1, save_strategy="no", report_to="none",
            dataloader_num_workers=0, disable_tqdm=True, log_completions=False)
        lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = GRPOTrainer(model=model, reward_funcs=[r.fn for r in rewards], args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora,
                              callbacks=[Timer()])
        trainer.train()
        history = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return {"step_times": [b - a for a, b in zip(marks, marks[1:])], "rewards": history}


def child(kind: str, steps: int, threads: int) -> None:
    import torch

    from grpo_studio.engine.memory import peak_rss

    torch.set_num_threads(threads)
    result = run_engine_child(steps) if kind == "engine" else run_trl_child(steps)
    result["threads"] = torch.get_num_threads()
    result["peak_rss"] = peak_rss()
    print("BENCH-RESULT " + json.dumps(result))


def measure(kind: str, steps: int, warmup: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(steps),
                           "--threads", str(threads)], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())  # not the repo root: its kernels/ would shadow HF's
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{kind} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(line.split(" ", 1)[1])
    timed = result["step_times"][warmup:] or result["step_times"]
    rewards = result.pop("rewards")
    return {"mean_step_s": sum(timed) / len(timed), "steps_timed": len(timed), "peak_rss": result["peak_rss"],
            "threads": result["threads"], "reward_first": rewards[0] if rewards else None,
            "reward_last": rewards[-1] if rewards else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="first steps left out of the mean")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both (the engine's choice "
                                                               "for a model this small)")
    parser.add_argument("--child", choices=("engine", "trl"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.threads)
        return 0
    engine = measure("engine", args.steps, args.warmup, args.threads)
    trl = measure("trl", args.steps, args.warmup, args.threads)
    ratios = {"step_time": engine["mean_step_s"] / trl["mean_step_s"], "peak_rss": engine["peak_rss"] / trl["peak_rss"]}
    print(json.dumps({"benchmark": "grpo_studio engine vs trl GRPOTrainer (CPU, demo model)", "steps": args.steps,
                      "engine": engine, "trl": trl, "ratios": {k: round(v, 3) for k, v in ratios.items()},
                      "goal": GOAL, "meets_goal": {k: ratios[k] <= GOAL[k] for k in GOAL}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
