"""GRPO loss forward + backward: naive (full logits + TRL formula), Liger's LigerFusedLinearGRPOLoss, ours.

Each variant runs in fresh subprocesses so its memory is its own, over --rounds rounds that alternate the
variants (the order rotates each round, so machine noise hits all alike). In each process: --warmup untimed
steps (Liger's default torch.compile'd loss compiles in the first one), then --repeats timed steps. Memory
is the peak resident memory of the timed steps over the baseline taken after the warm-up, with freed heap
handed back to the system first (Linux: peak reset through /proc/self/clear_refs, glibc malloc_trim;
elsewhere ru_maxrss over the whole process). On CUDA (--device cuda) peak CUDA memory over the inputs.
Prints one JSON object with every variant (median and spread of time and memory over all timed steps and
rounds, the worker's torch thread counts), ratios of ours vs naive and vs Liger, and whether all variants'
losses agree; exits 1 when a variant fails or the losses disagree.

    .venv/bin/python tests/benchmarks/bench_grpo_loss.py                 # B=8 T=1024 H=512 V=32000 fp32 CPU
    .venv/bin/python tests/benchmarks/bench_grpo_loss.py --batch 2 --length 16 --hidden 16 --vocab 64
    .venv/bin/python tests/benchmarks/bench_grpo_loss.py --liger-uncompiled   # Liger in eager mode
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
from bench_stats import peak_rss, reset_peak_rss, spread, status_bytes  # noqa: E402
VARIANTS = ("naive", "liger", "ours")
SETTINGS = dict(beta=0.04, epsilon_low=0.2, epsilon_high=0.28, loss_type="dapo", temperature=1.0)
# How far the variants' losses may be apart (relative to the loss's size, with a floor): same formula,
# different summation orders.
LOSS_TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3, help="fresh processes per variant, alternated")
    p.add_argument("--repeats", type=int, default=2, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per process first (compilation)")
    p.add_argument("--liger-uncompiled", action="store_true",
                   help="run Liger without torch.compile (its default is compiled); the JSON says so")
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

        module = LigerFusedLinearGRPOLoss(compiled=not args.liger_uncompiled, use_ref_model=True, **SETTINGS)

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


def run_worker(args) -> dict:
    import torch

    step = make_step(args.worker, args)  # imports happen before the baseline
    inputs = make_inputs(args)
    cuda = args.device.startswith("cuda")

    def timed_step():
        for t in inputs[:2]:
            t.grad = None
        start = time.perf_counter()
        loss = step(*inputs)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, loss

    warmup = [timed_step()[0] for _ in range(args.warmup)]
    for t in inputs[:2]:
        t.grad = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        exact = reset_peak_rss(trim_heap=True)
        baseline = status_bytes("VmRSS") if exact else peak_rss()
    times, loss = [], None
    for _ in range(args.repeats):
        seconds, loss = timed_step()
        times.append(seconds)
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = peak_rss()
    return {"variant": args.worker, "seconds": times, "warmup_seconds": warmup,
            "peak_extra_mb": (peak - baseline) / 2 ** 20, "loss": float(loss),
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}}


# --------------------------------------------------------------------------------------- driver side

def run_variant(variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--worker", variant]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"variant": variant, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(variant: str, runs: list[dict], args: argparse.Namespace) -> dict:
    """One variant over its rounds: median and spread of every timed step and of the per-process peaks."""
    failed = [r for r in runs if "error" in r]
    if failed:
        return {"variant": variant, "error": failed[0]["error"]}
    out = {"variant": variant, "seconds": spread([t for r in runs for t in r["seconds"]]),
           "warmup_seconds": spread([t for r in runs for t in r["warmup_seconds"]]) if args.warmup else None,
           "peak_extra_mb": spread([r["peak_extra_mb"] for r in runs]),
           "loss": runs[0]["loss"], "losses": [r["loss"] for r in runs], "threads": runs[0]["threads"]}
    if variant == "liger":
        out["compiled"] = not args.liger_uncompiled
        out["label"] = "Liger (torch.compile, warmed up)" if out["compiled"] else "Liger (uncompiled)"
    return out


def losses_agree(results: dict, dtype: str) -> tuple[bool, float]:
    losses = [loss for r in results.values() if "error" not in r for loss in r["losses"]]
    if not losses:
        return False, float("nan")
    gap = max(losses) - min(losses)
    return gap <= LOSS_TOLERANCE[dtype] * max(1.0, max(abs(x) for x in losses)), gap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return 0
    variants = args.variants.split(",")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_index in range(args.rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            runs[variant].append(run_variant(variant, argv))
    results = {v: summarize(v, runs[v], args) for v in variants}
    agree, gap = losses_agree(results, args.dtype)
    if args.device.startswith("cuda"):
        import torch

        device = torch.cuda.get_device_name()
    else:
        device = platform.processor() or platform.machine()
    report = {
        "shape": dict(B=args.batch, T=args.length, H=args.hidden, V=args.vocab, dtype=args.dtype,
                      frozen_weight=args.frozen_weight),
        "device": device, "cpus": os.cpu_count(),
        "rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup,
        "variants": results,
        "losses_agree": agree, "loss_gap": gap,
        "ratios": {},
    }
    ours = results.get("ours", {})
    for base in ("naive", "liger"):
        other = results.get(base, {})
        if "seconds" in ours and "seconds" in other:
            report["ratios"][f"ours_vs_{base}"] = {
                "time": ours["seconds"]["median"] / other["seconds"]["median"],
                "peak_extra_memory": ours["peak_extra_mb"]["median"] / max(other["peak_extra_mb"]["median"], 1e-9),
            }
    print(json.dumps(report, indent=2))
    if not agree:
        print(f"the variants' losses disagree (gap {gap:.3g}): see variants.*.losses", file=sys.stderr)
    return 0 if agree and all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
