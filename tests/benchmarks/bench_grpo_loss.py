"""GRPO loss forward + backward: naive (full logits + TRL formula), Liger's LigerFusedLinearGRPOLoss, ours.

Each variant runs in a fresh subprocess so its memory is its own: peak resident memory over the baseline
taken after the inputs exist (Linux: peak reset through /proc/self/clear_refs; elsewhere ru_maxrss), and
the best wall time over --repeats runs. On CUDA (--device cuda) peak CUDA memory over the inputs instead.
Prints one JSON object with every variant and ratios of ours vs naive and vs Liger.

    .venv/bin/python tests/benchmarks/bench_grpo_loss.py                 # B=8 T=1024 H=512 V=32000 fp32 CPU
    .venv/bin/python tests/benchmarks/bench_grpo_loss.py --batch 2 --length 16 --hidden 16 --vocab 64
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
VARIANTS = ("naive", "liger", "ours")
SETTINGS = dict(beta=0.04, epsilon_low=0.2, epsilon_high=0.28, loss_type="dapo", temperature=1.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per variant (best is reported)")
    p.add_argument("--chunk-size", type=int, default=None, help="ours: rows per chunk (default: automatic)")
    p.add_argument("--frozen-weight", action="store_true", help="lm_head weight without grad")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------------------- worker side

def make_inputs(args):
    """Same seeded inputs for every variant (one setup feeds all of them)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, args.dtype)
    b, t, h, v = args.batch, args.length, args.hidden, args.vocab
    hidden = (torch.randn(b, t, h, generator=gen) * 0.5).to(args.device, dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=gen) / h ** 0.5).to(args.device, dtype)
    weight.requires_grad_(not args.frozen_weight)
    ids = torch.randint(0, v, (b, t), generator=gen).to(args.device)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=gen)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(args.device, torch.int64)
    advantages = torch.randn(b, generator=gen).to(args.device)
    # Log-probs of roughly the right size for a V-way softmax, with some drift so the clip is active.
    base = -torch.log(torch.tensor(float(v)))
    old = (base + 0.3 * torch.randn(b, t, generator=gen)).to(args.device)
    ref = (base + 0.3 * torch.randn(b, t, generator=gen)).to(args.device)
    return hidden, weight, ids, mask, advantages, old, ref


def make_step(variant, args):
    """Returns step(inputs) -> loss tensor after backward."""
    if variant == "naive":
        sys.path.insert(0, str(TESTS))
        from grpo_reference import reference_grpo_loss

        def step(hidden, weight, ids, mask, adv, old, ref):
            loss = reference_grpo_loss(hidden, weight, ids, mask, adv, old_logps=old, ref_logps=ref,
                                       **SETTINGS)[0]
            loss.backward()
            return loss
    elif variant == "liger":
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss

        module = LigerFusedLinearGRPOLoss(compiled=False, use_ref_model=True, **SETTINGS)

        def step(hidden, weight, ids, mask, adv, old, ref):
            loss, _metrics = module(hidden, weight, ids, mask, adv, ref_per_token_logps=ref,
                                    old_per_token_logps=old)
            loss.backward()
            return loss
    else:
        from grpo_studio.kernels import grpo_loss

        def step(hidden, weight, ids, mask, adv, old, ref):
            loss = grpo_loss(hidden, weight, ids, mask, adv, old_logps=old, ref_logps=ref,
                             chunk_size=args.chunk_size, **SETTINGS).loss
            loss.backward()
            return loss
    return step


def _rss_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS
        return True
    except OSError:
        return False


def run_worker(args) -> dict:
    import torch

    step = make_step(args.worker, args)  # imports happen before the baseline
    inputs = make_inputs(args)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        exact = _reset_peak_rss()
        baseline = _rss_bytes("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, loss = [], None
    for _ in range(args.repeats):
        for t in inputs[:2]:
            t.grad = None
        start = time.perf_counter()
        loss = step(*inputs)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _rss_bytes("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"variant": args.worker, "seconds": min(times), "all_seconds": times,
            "peak_extra_mb": (peak - baseline) / 2 ** 20, "loss": float(loss)}


# --------------------------------------------------------------------------------------- driver side

def run_variant(variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", variant]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"variant": variant, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    import torch

    results = {v: run_variant(v, argv) for v in args.variants.split(",")}
    report = {
        "shape": dict(B=args.batch, T=args.length, H=args.hidden, V=args.vocab, dtype=args.dtype,
                      frozen_weight=args.frozen_weight),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
        or platform.machine(),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "variants": results,
        "ratios": {},
    }
    ours = results.get("ours", {})
    for base in ("naive", "liger"):
        other = results.get(base, {})
        if "seconds" in ours and "seconds" in other:
            report["ratios"][f"ours_vs_{base}"] = {
                "time": ours["seconds"] / other["seconds"],
                "peak_extra_memory": ours["peak_extra_mb"] / max(other["peak_extra_mb"], 1e-9),
            }
    print(json.dumps(report, indent=2))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
