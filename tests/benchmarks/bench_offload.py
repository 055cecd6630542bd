"""Benchmark: RAM-offloaded checkpointing vs plain checkpointing, same model, same batches, one run.

One training step = forward of the LoRA model's decoder → fused GRPO loss on the last hidden states →
backward. Both modes go through the same wrapper (`handle.offload` switched between steps, rounds
interleaved so machine noise hits both alike). Prints JSON: median, fastest and slowest step time per mode,
the activation bytes that stayed on the compute device during forward as the wrapper itself counts them
(`wrapper_counted_*`: its own bookkeeping, not a measurement), the process's measured peak RSS during the
step, on CUDA the peak allocated memory, and the ratios offload / plain with their per-round spread.

On CPU there is nothing to offload to: the "offload" mode copies each layer input into pooled host buffers in
the same RAM, so the measured RSS does not drop (it may rise by the pool) and the step-time ratio is the cost
of that copy path (`ratios.cpu_copy_path_*`), not the cost of offloading; the GPU figures need --device cuda.

    python tests/benchmarks/bench_offload.py                              # small random Llama on CPU
    python tests/benchmarks/bench_offload.py --device cuda --arch-config qwen2.5-1.5b/config.json \\
        --load-in-4bit --dtype bf16 --batch 8 --seq 4096 --steps 5        # the issue's GPU measurement

Weights are random (from the config); nothing is downloaded.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
from bench_stats import peak_rss, reset_peak_rss, status_bytes  # noqa: E402

from grpo_studio.kernels.loss.functional import grpo_loss
from grpo_studio.kernels.offload.checkpointing import apply_offloaded_checkpointing

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--arch-config", help="a model's config.json (or its folder); default: a small Llama")
    p.add_argument("--hidden", type=int, default=256, help="hidden size of the default model")
    p.add_argument("--layers", type=int, default=4, help="decoder layers of the default model")
    p.add_argument("--vocab", type=int, default=1024, help="vocabulary of the default model")
    p.add_argument("--batch", type=int, default=4, help="sequences per micro-batch (generations)")
    p.add_argument("--seq", type=int, default=256, help="tokens per sequence")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per mode first")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    p.add_argument("--load-in-4bit", action="store_true", help="NF4 base weights (bitsandbytes)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's own choice); 1 keeps a "
                                                "busy machine's noise down")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):
    import transformers

    if args.arch_config:
        path = Path(args.arch_config)
        data = json.loads((path / "config.json" if path.is_dir() else path).read_text())
        return transformers.AutoConfig.for_model(**data)
    h = args.hidden
    return transformers.LlamaConfig(vocab_size=args.vocab, hidden_size=h, intermediate_size=h * 3,
                                    num_hidden_layers=args.layers, num_attention_heads=max(1, h // 64),
                                    num_key_value_heads=max(1, h // 128), max_position_embeddings=args.seq + 8)


def build_model(args: argparse.Namespace):
    """A random-weight LoRA model of the config on the device (4-bit via a temporary save when asked)."""
    import transformers
    from peft import LoraConfig, get_peft_model

    config = build_config(args)
    dtype = DTYPES[args.dtype]
    torch.manual_seed(0)
    if args.load_in_4bit:
        quant = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        with tempfile.TemporaryDirectory() as tmp:
            transformers.AutoModelForCausalLM.from_config(config, dtype=dtype).save_pretrained(tmp)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                tmp, quantization_config=quant, dtype=dtype, device_map={"": args.device})
    else:
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype).to(args.device)
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules=LORA_TARGETS)
    return get_peft_model(model, lora).train(), config


def make_step(model, config, args: argparse.Namespace):
    """One GRPO-shaped micro-batch step; returns a function that runs it."""
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=g).to(device)
    mask = torch.ones(args.batch, args.seq - 1, device=device)
    advantages = torch.linspace(-1, 1, args.batch, device=device)
    decoder = model.get_base_model().model
    lm_head = model.get_output_embeddings().weight

    def step() -> None:
        model.zero_grad(set_to_none=True)
        hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
        grpo_loss(hidden[:, :-1], lm_head, ids[:, 1:], mask, advantages).loss.backward()

    return step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, config = build_model(args)
    step = make_step(model, config, args)
    handle = apply_offloaded_checkpointing(model, offload=True)
    cuda = args.device.startswith("cuda")
    modes = {"plain": False, "offload": True}
    times: dict[str, list[float]] = {m: [] for m in modes}
    memory: dict[str, dict] = {m: {} for m in modes}
    rss_exact = True
    for round_index in range(args.warmup + args.steps):
        for mode, offload in modes.items():
            handle.offload = offload
            handle.reset_peaks()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            sync(args.device)
            rss_exact = reset_peak_rss() and rss_exact
            rss_before = status_bytes("VmHWM") if rss_exact else None  # the reset's starting point
            start = time.perf_counter()
            step()
            sync(args.device)
            if round_index >= args.warmup:
                times[mode].append(time.perf_counter() - start)
            stats = handle.stats()
            rss_peak = peak_rss()
            memory[mode] = {"wrapper_counted_device_bytes_peak": stats["device_saved_bytes_peak"],
                            "wrapper_counted_offloaded_peak": stats["offloaded_peak"],
                            "rss_peak": rss_peak,
                            "rss_peak_above_step_start": rss_peak - rss_before if rss_before else None,
                            "gpu_peak_allocated": torch.cuda.max_memory_allocated() if cuda else None}
    pinned = handle.stats()
    handle.remove()
    itemsize = torch.empty((), dtype=DTYPES[args.dtype]).element_size()
    activation_bytes = config.num_hidden_layers * args.batch * args.seq * config.hidden_size * itemsize
    result = {
        "benchmark": "offload",
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "offload_target": "pinned host RAM" if cuda else
        "the same RAM (CPU: a copy into pooled host buffers, nothing leaves the device)",
        "rss_peak_per_step": rss_exact, "threads": torch.get_num_threads(),
        "model": getattr(config, "model_type", "?"),
        "layers": config.num_hidden_layers, "hidden": config.hidden_size, "batch": args.batch, "seq": args.seq,
        "dtype": args.dtype, "load_in_4bit": args.load_in_4bit, "steps": args.steps,
        "layer_input_bytes_all_layers": activation_bytes,
        "pinned_bytes": pinned["pinned_bytes"], "pinned_allocations": pinned["pinned_allocations"],
        "modes": {m: {"step_s_median": statistics.median(times[m]), "step_s_min": min(times[m]),
                      "step_s_max": max(times[m]), "step_s": times[m], **memory[m]}
                  for m in modes},
    }
    plain, off = result["modes"]["plain"], result["modes"]["offload"]
    per_round = [o / p for o, p in zip(off["step_s"], plain["step_s"])]
    # On CPU the "offload" mode is a copy within the same RAM: its time ratio is that copy path's cost.
    prefix = "offload" if cuda else "cpu_copy_path"
    result["ratios"] = {
        f"step_time_{prefix}_vs_plain": off["step_s_median"] / plain["step_s_median"],
        # The fastest step of each mode: less sensitive to other work on a shared machine.
        f"min_step_time_{prefix}_vs_plain": off["step_s_min"] / plain["step_s_min"],
        f"step_time_{prefix}_vs_plain_per_round": {"min": min(per_round), "max": max(per_round)},
        "wrapper_counted_device_bytes_offload_vs_plain":
            off["wrapper_counted_device_bytes_peak"] / max(1, plain["wrapper_counted_device_bytes_peak"]),
        "rss_peak_offload_vs_plain": off["rss_peak"] / plain["rss_peak"],
    }
    if cuda:
        # The goal: peak VRAM lower by about the layer-input bytes (all layers but the one in flight).
        reduction = plain["gpu_peak_allocated"] - off["gpu_peak_allocated"]
        result["gpu_peak_reduction_bytes"] = reduction
        result["ratios"]["gpu_peak_reduction_vs_layer_inputs"] = reduction / activation_bytes
    return result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
