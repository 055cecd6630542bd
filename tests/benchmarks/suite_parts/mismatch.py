"""Part 8: the sampler/trainer mismatch the loss corrects, on this card.

An fp32 run (16-bit weights upcast, LoRA r=16) samples its completions in a 16-bit dtype, as the fast rollout
path does for speed; the sampler's own per-token log-probs then differ from the fp32 training forward's, and
the loss weights each token by their truncated ratio (`vllm_importance_sampling_correction`). Two GRPO steps per
sampling dtype (bf16, then fp16 where the card has it) through `run_engine`; each step's metrics carry the
mismatch: `sampler_kl`, KL(sampler || trainer) per token, and `sampler_capped`, the share of tokens the
correction truncated. Sampling in fp32 is the baseline: the two forwards are the same function of the same
weights, so nothing is measured there (the engine reports None). Random weights: near-uniform next-token
distributions, so the figures are a floor for a trained model's sharper ones.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from suite_parts.common import clean_cuda, cuda_available, stats, train_config, write_dataset
from suite_parts.training import QWEN, StopAtDeadline, model_dir

STEPS = 2


def run(workdir: Path, smoke: bool, deadline: float) -> dict:
    from grpo_studio.engine.common.events import read_events
    from grpo_studio.engine.common.runs import RunPaths
    from grpo_studio.engine.run.runner import run_engine

    folder = model_dir(workdir, QWEN, smoke)
    completion = 8 if smoke else 128
    dtypes = ["float32", "bfloat16"]
    if cuda_available():  # fp16 sampling of an fp32 run: CUDA only (the CPU's fp16 matmuls are emulated)
        dtypes.append("float16")
    out: dict = {"settings": {"completion_tokens": completion, "generations": 8, "steps": STEPS,
                              "train_dtype": "float32", "device": "cuda" if cuda_available() else "cpu"},
                 "sampling": {}}
    data = write_dataset(workdir / "data.jsonl")
    for sampling in dtypes:
        config = train_config(folder, data, completion=completion, steps=STEPS)
        config.load_in_4bit, config.dtype, config.grpo.generation_dtype = False, "float32", sampling
        run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"run-mismatch-{sampling}-"))
        code = run_engine(config, run_dir, quiet=True, control=StopAtDeadline(deadline))
        events = list(read_events(RunPaths(run_dir).events))
        if code != 0:
            error = next((e for e in events if e["type"] == "error"), {})
            raise RuntimeError(f"the {sampling} run failed (exit {code}): {error.get('kind')}: {error.get('message')}")
        signals = [e.get("signal") or {} for e in events if e["type"] == "metrics"]
        kl = [s["sampler_kl"] for s in signals if s.get("sampler_kl") is not None]
        capped = [s["sampler_capped"] for s in signals if s.get("sampler_capped") is not None]
        out["sampling"][sampling] = {"steps": len(signals), "sampler_kl": stats(kl) if kl else None,
                                     "sampler_capped": stats(capped) if capped else None}
        clean_cuda()
    return out
