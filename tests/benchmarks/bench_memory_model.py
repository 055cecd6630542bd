"""The memory model checked by measurement: `grpo-studio estimate`'s per-component figures against the bytes the
engine really allocates, on the CPU, where the same tensors take the same bytes as on a GPU.

    .venv/bin/python tests/benchmarks/bench_memory_model.py                       # Qwen2.5-1.5B and Llama-3.1-8B widths
    .venv/bin/python tests/benchmarks/bench_memory_model.py --arch qwen2.5-1.5b --prompt 256 --completion 1792
    .venv/bin/python tests/benchmarks/bench_memory_model.py --arch tiny             # the CI smoke size

Real architectures at reduced depth (2 layers), random weights, bf16, LoRA on all linear layers, AdamW, HF gradient
checkpointing (offload off: on a CPU the "offload" is another copy in the same RAM). One GRPO micro-batch goes
through the engine's own code: `hidden_states` -> slice -> `grpo_loss` -> backward -> AdamW step, then a
generation of the same batch through the fast rollout path (prefill shared per prompt, preallocated KV cache,
unmerged LoRA: the layout the estimator assumes) for GEN_STEPS tokens: the peak comes at the prefill and first
steps, and each profiled decode step costs seconds on the CPU. torch's profiler with profile_memory=True records every
allocation and free; tiny marker allocations split the timeline into phases, and each phase's live and peak bytes
are read from it. Bytes are deterministic, so one run per setting is a measurement, not a sample.

Found by it, and fixed: on the CPU a bf16 matmul handed a 3D [B, 1, h] input (HF's `logits_to_keep=1` slice)
copies the whole transposed lm_head first (445 MiB at Qwen2.5-1.5B's width, 1002 MiB at Llama-3.1-8B's), so
the fast rollout path now applies the head to the 2D last-position rows itself; the generation peak sits inside
the prefill's widest LoRA module (peft's unmerged forward promotes the base output to fp32 beside B's output),
and the prefill runs once per distinct prompt, not per completion: the estimator now counts both.

What only a GPU can show (left to tests/benchmarks/gpu_suite.py): the CUDA context and loaded kernels, cuBLAS /
cuDNN workspaces, the caching allocator's rounding and fragmentation, bitsandbytes' 4-bit layout and its
dequantisation buffers (here the base is 16-bit), Triton's autotune flush buffer, FlashAttention's own workspace.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch.profiler import ProfilerActivity, profile

from grpo_studio.engine.common.estimate import default_settings
from grpo_studio.engine.common.estimate_model import Arch, grpo_studio_plan, loss_bytes

# name -> (config.json fields, layers kept). Widths of the published configs; depth cut to 2 layers.
ARCHS = {
    "qwen2.5-1.5b": dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_attention_heads=12,
                         num_key_value_heads=2, head_dim=128, vocab_size=151936, tie_word_embeddings=True,
                         attention_bias=True),
    # Llama-3.1-8B's widths with its lm_head tied to the embeddings: the untied 1 GiB head would take the run
    # past the ~4 GB this shared machine allows, and the estimator is told the same (its weights follow `tied`).
    "llama-3.1-8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=True,
                         attention_bias=False),
    "tiny": dict(model_type="llama", hidden_size=64, intermediate_size=176, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, vocab_size=512, tie_word_embeddings=False,
                 attention_bias=False),
}
LAYERS = 2
GEN_STEPS = 8
_MARK_BYTES = 7919  # a prime nothing else allocates: each marker allocation splits the timeline


@dataclass
class Timeline:
    """Live bytes after each allocation event, and the index of each marker."""

    live: list[int]
    marks: list[int]

    def at(self, mark: int) -> int:
        return self.live[self.marks[mark]] if mark >= 0 else 0

    def peak(self, start: int, end: int) -> int:
        """Highest live bytes between two markers (-1 = the start of the timeline)."""
        lo = self.marks[start] if start >= 0 else 0
        return max(self.live[lo:self.marks[end] + 1])


@contextmanager
def recorded():
    """Profile allocations; yields a `mark()` function and, afterwards, a Timeline in the returned list."""
    out: list[Timeline] = []

    def mark() -> None:
        torch.empty(_MARK_BYTES, dtype=torch.uint8)  # allocated and freed at once

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield mark, out
    live, marks, total = [], [], 0
    for event in prof.profiler.kineto_results.events():
        if event.name() != "[memory]":
            continue
        total += event.nbytes()
        if event.nbytes() == _MARK_BYTES:
            marks.append(len(live))
            total -= _MARK_BYTES  # the marker itself is not counted
        live.append(total)
    out.append(Timeline(live, marks))


def build_model(name: str, lora_r: int):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(ARCHS[name])
    config = AutoConfig.for_model(fields.pop("model_type"), num_hidden_layers=LAYERS, **fields)
    config.use_cache = False
    torch.manual_seed(0)
    with recorded() as (mark, out):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        mark()
        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules="all-linear",
                                                 lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
        mark()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, out[0].at(0), out[0].at(1) - out[0].at(0)


def train_step(model, optimizer, batch: int, prompt: int, completion: int, vocab: int) -> dict:
    """One micro-batch through the engine's training path; live/peak bytes per phase above the step's start."""
    from grpo_studio.engine.model import policy as policy_model
    from grpo_studio.kernels import grpo_loss

    ids = torch.randint(0, vocab, (batch, prompt + completion))
    mask = torch.ones_like(ids)
    completion_ids = ids[:, prompt:]
    advantages = torch.linspace(-1, 1, batch)
    weight = policy_model.lm_head_weight(model)
    model.train()
    with recorded() as (mark, out):
        mark()  # 0: start
        hidden = policy_model.hidden_states(model, ids, mask)
        mark()  # 1: forward done, checkpoints held
        sliced = hidden[:, prompt - 1:prompt - 1 + completion]
        loss = grpo_loss(sliced, weight, completion_ids, torch.ones_like(completion_ids), advantages,
                         loss_type="dapo").loss
        hidden.register_hook(lambda grad: mark())  # 2: the loss's gradient reached the final hidden states
        loss.backward()
        del hidden, sliced, loss  # what the engine's loop drops before its optimizer step
        mark()  # 3: backward done
        optimizer.step()
        mark()  # 4: optimizer step done
    t = out[0]
    base = t.at(0)
    return {"forward_live": t.at(1) - base, "loss_peak": t.peak(1, 2) - base,
            "backward_peak": t.peak(2, 3) - base, "after_step": t.at(4) - base}


def generation(model, batch: int, group: int, prompt: int, completion: int, vocab: int) -> dict:
    """The fast rollout path for `batch` completions (`group` per prompt): KV cache bytes and the peak."""
    from grpo_studio.engine.rollout.decode import DecodeSettings, decode
    from grpo_studio.engine.rollout.weights import GenerationPlan, generation_weights
    from grpo_studio.engine.rollout.sampling import SamplingParams

    prompts = max(1, batch // group)
    prompt_ids = torch.randint(0, vocab, (prompts, prompt))
    rows = torch.arange(batch) // group
    settings = DecodeSettings(completion, (), 0, SamplingParams(), static=False, compile_step=False)
    plan = GenerationPlan(torch.bfloat16, merged=False, reason="the estimator's layout")
    model.eval()
    with torch.no_grad(), generation_weights(model, plan, torch.bfloat16) as lm, recorded() as (mark, out):
        mark()
        decode(lm, prompt_ids, torch.ones_like(prompt_ids), rows, settings)
        mark()
    t = out[0]
    return {"peak": t.peak(0, 1) - t.at(0)}


def measure(name: str, batch: int, group: int, prompt: int, completion: int, lora_r: int = 16) -> dict:
    fields = ARCHS[name]
    arch = Arch.from_config({**fields, "num_hidden_layers": LAYERS})
    settings = default_settings(dtype_bytes=2, lora_r=lora_r, num_generations=group,
                                prompts_per_step=max(1, batch // group), max_prompt_length=prompt,
                                max_completion_length=completion, micro_batch_size=batch,
                                generation_batch_size=batch, gradient_checkpointing=True, offload=False)
    est = grpo_studio_plan(arch, settings)["components"]
    model, weights, lora = build_model(name, lora_r)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    step = train_step(model, optimizer, batch, prompt, completion, fields["vocab_size"])
    # The generation peak comes at the prefill and the first steps (the KV cache is allocated once, full size);
    # a profiled decode step costs seconds on the CPU, so generation runs GEN_STEPS tokens and is estimated so.
    gen_steps = min(completion, GEN_STEPS)
    gen = generation(model, batch, group, prompt, gen_steps, fields["vocab_size"])
    gen_est = grpo_studio_plan(arch, replace(settings, max_completion_length=gen_steps))["components"]
    tokens, rows = batch * (prompt + completion), batch * completion
    norm_input = tokens * arch.hidden * 4  # the final RMSNorm's fp32 input: the estimator counts it in the loss
    measured = {
        "weights": weights,
        "lora_and_optimizer": lora + step["after_step"],  # adapters, then their gradients and AdamW moments
        "activations": step["forward_live"] - norm_input,
        "logits": step["loss_peak"] - step["forward_live"] + norm_input,
        "recompute": step["backward_peak"] - step["forward_live"] + norm_input,
        "kv_and_generation": gen["peak"],
    }
    # The loss's part below is relative to the checkpoints (the two coexist); so is the recompute's.
    estimated = {key: est[key] for key in ("weights", "lora_and_optimizer", "activations", "logits", "recompute")}
    # The CPU runs the loss's torch path: compare its estimate (no Triton flush buffer, 16-bit gradient rows).
    estimated["logits"] += (loss_bytes(arch, settings, tokens, rows, triton=False)
                            - loss_bytes(arch, settings, tokens, rows))
    estimated["kv_and_generation"] = gen_est["kv_cache"] + gen_est["generation_workspace"]
    rows_out = {key: {"measured": measured[key], "estimated": estimated[key],
                      "ratio": round(estimated[key] / measured[key], 4) if measured[key] else None}
                for key in measured}
    return {"arch": name, "layers": LAYERS, "batch": batch, "group": group, "prompt": prompt,
            "completion": completion, "generation_steps": gen_steps, "tokens": tokens, "loss_rows": rows, "lora_r": lora_r,
            "norm_input_bytes": norm_input, "loss_bytes_formula": loss_bytes(arch, settings, tokens, rows),
            "components": rows_out,
            "within_15_percent": all(r["ratio"] is not None and 0.85 <= r["ratio"] <= 1.15
                                     for r in rows_out.values())}


DEFAULT_RUNS = [("qwen2.5-1.5b", 2, 2, 256, 768), ("qwen2.5-1.5b", 4, 4, 512, 1536),
                ("llama-3.1-8b", 1, 1, 256, 768)]


def markdown(results: list[dict]) -> str:
    lines = ["| arch | tokens | component | measured MiB | estimated MiB | est / measured |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for key, c in r["components"].items():
            lines.append(f"| {r['arch']} | {r['tokens']} | {key} | {c['measured'] / 2**20:.1f} | "
                         f"{c['estimated'] / 2**20:.1f} | {c['ratio']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=tuple(ARCHS))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--group", type=int, default=2, help="completions per prompt (they share one prefill)")
    p.add_argument("--prompt", type=int, default=64)
    p.add_argument("--completion", type=int, default=192)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = [(args.arch, args.batch, args.group, args.prompt, args.completion)] if args.arch else DEFAULT_RUNS
    results = [measure(*run) for run in runs]
    print(json.dumps({"results": results, "all_within_15_percent": all(r["within_15_percent"] for r in results)},
                     indent=1))
    print(markdown(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
