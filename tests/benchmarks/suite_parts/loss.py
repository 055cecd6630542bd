"""Part 1: the fused GRPO loss in the engine's micro-batch, forward + backward, against its baselines.

Contenders on the same inputs (bf16 hidden [B, T, H], frozen lm_head [V, H], on-policy, beta 0, dapo like the
engine's defaults): GRPO Studio's Triton kernel, its chunked torch path (GRPO_STUDIO_NO_TRITON=1), the naive
full-logits loss (tests/grpo_reference.py) and Liger's LigerFusedLinearGRPOLoss (torch.compile'd). Each is
warmed up once (compiles, autotuning), then the contenders alternate over the repeats. Per contender: peak
CUDA memory above the inputs, time (median and spread), the max abs difference of loss and grad_h against an
fp32 reference computed one sequence at a time, and grad_h's largest change from run to run (atomic adds
make the Triton kernel's sums order-dependent).
"""
from __future__ import annotations

import os
import sys
import time

from suite_parts.common import TESTS, Skip, cuda_available, ratio, stats

SETTINGS = dict(beta=0.0, epsilon_low=0.2, epsilon_high=0.28, loss_type="dapo", temperature=1.0)
FULL = dict(batch=8, length=4096, hidden=4096, vocab=128256, dtype="bfloat16", repeats=3)
SMOKE = dict(batch=2, length=16, hidden=32, vocab=300, dtype="float32", repeats=3)


def make_inputs(shape: dict, device: str):
    import torch

    gen = torch.Generator(device).manual_seed(0)  # on the device: 0.5 G weights would take seconds on a CPU
    dtype = getattr(torch, shape["dtype"])
    b, t, h, v = shape["batch"], shape["length"], shape["hidden"], shape["vocab"]
    hidden = (torch.randn(b, t, h, generator=gen, device=device) * 0.5).to(dtype).requires_grad_()
    weight = (torch.randn(v, h, generator=gen, device=device) / h ** 0.5).to(dtype)
    ids = torch.randint(0, v, (b, t), generator=gen, device=device)
    lengths = torch.randint(t // 2, t + 1, (b,), generator=gen, device=device)
    mask = (torch.arange(t, device=device)[None, :] < lengths[:, None]).to(torch.int64)
    advantages = torch.randn(b, generator=gen, device=device)
    return hidden, weight, ids, mask, advantages


def contenders(device: str, compiled: bool) -> dict:
    """name -> step(hidden, weight, ids, mask, adv) -> loss (after backward), or the Skip reason."""
    sys.path.insert(0, str(TESTS))
    from grpo_reference import reference_grpo_loss

    from grpo_studio.kernels import grpo_loss

    def ours(triton: bool):
        def step(hidden, weight, ids, mask, adv):
            old = os.environ.pop("GRPO_STUDIO_NO_TRITON", None)
            if not triton:
                os.environ["GRPO_STUDIO_NO_TRITON"] = "1"
            try:
                loss = grpo_loss(hidden, weight, ids, mask, adv, **SETTINGS).loss
                loss.backward()
            finally:
                os.environ.pop("GRPO_STUDIO_NO_TRITON", None)
                if old is not None:
                    os.environ["GRPO_STUDIO_NO_TRITON"] = old
            return loss
        return step

    def naive(hidden, weight, ids, mask, adv):
        loss = reference_grpo_loss(hidden, weight, ids, mask, adv, **SETTINGS)[0]
        loss.backward()
        return loss

    out: dict = {"chunked_torch": ours(False), "naive": naive}
    out["triton"] = ours(True) if device == "cuda" else Skip("the Triton kernel runs on CUDA only (the tests "
                                                            "run it in Triton's interpreter)")
    try:
        from liger_kernel.chunked_loss import LigerFusedLinearGRPOLoss
    except ImportError as exc:
        out["liger"] = Skip(f"liger-kernel not importable: {exc}")
    else:
        module = LigerFusedLinearGRPOLoss(compiled=compiled, use_ref_model=False, **SETTINGS)

        def liger(hidden, weight, ids, mask, adv):
            loss, _metrics = module(hidden, weight, ids, mask, adv)
            loss.backward()
            return loss
        out["liger"] = liger
    return out


def fp32_reference(inputs) -> tuple[float, "object"]:
    """Loss and grad_h in fp32, one sequence at a time (dapo: each sequence's share is its token count)."""
    import torch

    sys.path.insert(0, str(TESTS))
    from grpo_reference import reference_grpo_loss

    hidden, weight, ids, mask, adv = inputs
    w32 = weight.detach().float()
    total_tokens = mask.sum().clamp(min=1).item()
    grad = torch.zeros_like(hidden, dtype=torch.float32)
    loss_sum = 0.0
    for i in range(hidden.shape[0]):
        h = hidden[i:i + 1].detach().float().requires_grad_()
        loss = reference_grpo_loss(h, w32, ids[i:i + 1], mask[i:i + 1], adv[i:i + 1], **SETTINGS)[0]
        share = mask[i].sum().item() / total_tokens
        (loss * share).backward()
        grad[i] = h.grad[0]
        loss_sum += loss.item() * share
    return loss_sum, grad


def run(smoke: bool, deadline: float) -> dict:
    device = "cuda" if cuda_available() and not smoke else "cpu"
    shape = SMOKE if smoke else FULL
    inputs = make_inputs(shape, device)
    ref_loss, ref_grad = fp32_reference(inputs)
    ref_scale = float(ref_grad.abs().max())  # grad_h entries are ~1/tokens: relative errors say more
    steps = contenders(device, compiled=device == "cuda")
    results: dict = {name: ({"skipped": str(s)} if isinstance(s, Skip) else {"seconds": [], "peak_bytes": []})
                     for name, s in steps.items()}
    live = {name: s for name, s in steps.items() if not isinstance(s, Skip)}
    first_grads: dict = {}  # the warm-up's grad_h, to tell whether repeats give bit-identical gradients
    for name in list(live):  # warm-up: compiles and autotuning, also the first look at the numbers
        started = time.perf_counter()
        loss = _guarded(live, name, inputs, device, results)
        if loss is None:
            continue
        results[name]["warmup_s"] = time.perf_counter() - started
        results[name]["max_abs_diff_loss"] = abs(float(loss) - ref_loss)
        results[name]["max_abs_diff_grad_h"] = float((inputs[0].grad.float() - ref_grad).abs().max())
        results[name]["max_rel_diff_grad_h"] = results[name]["max_abs_diff_grad_h"] / max(ref_scale, 1e-30)
        first_grads[name] = inputs[0].grad.clone()
        results[name]["seconds"].clear()
        results[name]["peak_bytes"].clear()
    for _ in range(shape["repeats"]):  # contenders alternate, so drift hits all of them alike
        if time.monotonic() > deadline:
            break
        for name in list(live):
            if _guarded(live, name, inputs, device, results) is not None:
                drift = float((inputs[0].grad.float() - first_grads[name].float()).abs().max())
                results[name]["run_to_run_max_abs_diff_grad_h"] = max(
                    drift, results[name].get("run_to_run_max_abs_diff_grad_h", 0.0))
    first_grads.clear()
    for name, r in results.items():
        if "seconds" in r:
            r["time"], r["peak_extra_memory"] = stats(r.pop("seconds")), stats(r.pop("peak_bytes"))
    ratios = {}
    for ours in ("triton", "chunked_torch"):
        for base in ("naive", "liger", "chunked_torch"):
            a, b = results.get(ours, {}), results.get(base, {})
            if ours != base and "time" in a and "time" in b:
                ratios[f"{ours}_vs_{base}"] = {
                    "time": ratio(a["time"]["median"], b["time"]["median"]),
                    "peak_extra_memory": ratio(a["peak_extra_memory"]["median"], b["peak_extra_memory"]["median"])}
    return {"device": device, "shape": shape, "settings": SETTINGS, "fp32_reference_loss": ref_loss,
            "contenders": results, "ratios": ratios,
            "goals": {"triton_memory_vs_naive_at_most": 1 / 20, "triton_time_vs_liger_at_most": 1.0}}


def _guarded(live: dict, name: str, inputs, device: str, results: dict):
    """One run of a contender; one that fails (e.g. the naive loss out of memory on a small card) is dropped
    with its reason, and the others go on."""
    import torch

    try:
        return _once(live[name], inputs, device, results[name])
    except Exception as exc:  # noqa: BLE001 - any contender failure is reported, not fatal to the part
        first = str(exc).splitlines()[0] if str(exc) else ""
        kind = "out of GPU memory at this size" if isinstance(exc, torch.OutOfMemoryError) else type(exc).__name__
        results[name] = {"skipped": f"{kind}: {first}"}
        live.pop(name)
        inputs[0].grad = None
        if device == "cuda":
            torch.cuda.empty_cache()
        return None


def _once(step, inputs, device: str, into: dict):
    import torch

    inputs[0].grad = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    started = time.perf_counter()
    loss = step(*inputs)
    if device == "cuda":
        torch.cuda.synchronize()
    into["seconds"].append(time.perf_counter() - started)
    if device == "cuda":
        into["peak_bytes"].append(torch.cuda.max_memory_allocated() - base)
    else:
        into["peak_bytes"].append(None)
        into["peak_note"] = "CPU: CUDA memory not measured"
    return loss.detach()
