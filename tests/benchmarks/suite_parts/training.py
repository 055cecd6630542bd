"""Parts 2-4: real GRPO training through the engine, measured VRAM against `grpo-studio estimate`.

2. Qwen2.5-1.5B shape, 4-bit + LoRA r=16, G=8, 512-token completions (EOS suppressed), 3 full GRPO steps via
   `run_engine` (generation included): peak VRAM as torch's max reserved (from the per-step memory events)
   and as nvidia-smi sees the process, against the estimate for the same config.
3. Offloaded checkpointing on vs off, 4096-token completions: the training step (generation replaced by a
   synthetic full-length rollout, so the figure is the forward/backward's) alternated between two loaded
   policies; step-time ratio and VRAM saved against the estimator's activation row.
4. Llama-3.1-8B shape, G=8, 4-bit, offload on: the training step at doubling completion lengths until the
   card or the time budget runs out; peak VRAM against the estimate's persistent + training-phase bytes.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

from grpo_studio.engine.train.control import Control
from suite_parts.common import (NvidiaSmiPeak, Skip, build_random_model, clean_cuda, cuda_available, estimate,
                                ratio, stats, train_config, write_dataset)

QWEN = ("Qwen/Qwen2.5-1.5B", "qwen2")
LLAMA_8B = ("meta-llama/Llama-3.1-8B", "llama")


def model_dir(workdir: Path, which: tuple[str, str], smoke: bool) -> Path:
    hub_id, family = which
    folder = workdir / f"{'tiny-' if smoke else ''}{hub_id.replace('/', '--')}"
    return build_random_model(folder, hub_id, family, tiny=smoke, device="cuda" if cuda_available() else "cpu")


def plan_figures(result: dict) -> dict:
    plan = result["plans"]["grpo_studio"]
    c = plan["components"]
    persistent = c["weights"] + c["lora_and_optimizer"] + c["cuda_overhead"]
    return {"total": plan["total"], "peak_phase": plan["peak_phase"], "components": c,
            "training_phase_peak": persistent + plan["phases"]["training"]}


# ----------------------------------------------------------------------------------------------- part 2
class StopAtDeadline(Control):
    """Asks the run to stop (after the step in progress) once `deadline` passes, so a slow card still reports
    the steps it finished instead of being cut off by the part's hard stop."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    @property
    def stop_requested(self) -> bool:
        return super().stop_requested or time.monotonic() > self.deadline


def grpo_steps(workdir: Path, smoke: bool, deadline: float) -> dict:
    from grpo_studio.engine.common.events import read_events
    from grpo_studio.engine.run.runner import run_engine
    from grpo_studio.engine.common.runs import RunPaths

    folder = model_dir(workdir, QWEN, smoke)
    completion = 8 if smoke else 512
    config = train_config(folder, write_dataset(workdir / "data.jsonl"), completion=completion, steps=3)
    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="run-grpo-"))
    clean_cuda()
    started = time.perf_counter()
    with NvidiaSmiPeak() as smi:
        code = run_engine(config, run_dir, quiet=True, control=StopAtDeadline(deadline))
    wall = time.perf_counter() - started
    events = list(read_events(RunPaths(run_dir).events))
    if code != 0:
        error = next((e for e in events if e["type"] == "error"), {})
        raise RuntimeError(f"the run failed (exit {code}): {error.get('kind')}: {error.get('message')}")
    memory = [e for e in events if e["type"] == "memory"]
    lengths = [e["completion_length"] for e in events if e["type"] == "metrics"]
    reserved = max((e.get("gpu_peak_reserved") or 0 for e in memory), default=0) or None
    est = plan_figures(estimate(config, folder))
    out = {"settings": {"completion_tokens": completion, "generations": 8, "steps": 3, "lora_r": 16,
                        "load_in_4bit": config.load_in_4bit},
           "wall_s": wall, "completion_length": lengths, "steps_completed": len(lengths),
           "full_length": all(x["mean"] == completion for x in lengths),
           "measured": {"torch_max_reserved": reserved,
                        "torch_max_allocated": max((e.get("gpu_peak") or 0 for e in memory), default=0) or None,
                        "per_step_reserved": [e.get("gpu_peak_reserved") for e in memory],  # step 1: + loading
                        "nvidia_smi": smi.summary(), "rss_peak": max(e["rss"] for e in memory)},
           "estimate": est}
    smi_peak = smi.process_peak
    out["ratios"] = {"estimate_vs_torch_reserved": ratio(est["total"], reserved),
                     "estimate_vs_nvidia_smi": ratio(est["total"], smi_peak)}
    out["goals"] = {"measured_at_most_bytes": 4 * 10**9, "estimate_within": 0.15, "estimate_never_below": True}
    if not cuda_available():
        out["measured"]["note"] = "CPU: VRAM not measured (the part ran to keep its code path alive)"
    return out


# ------------------------------------------------------------------------------------ synthetic steps
@contextlib.contextmanager
def synthetic_generation(completion: int):
    """Replace the engine's generation by a full-length rollout of random tokens (the training phase is
    what these parts measure; generating 8 x 4096 tokens would eat the whole time budget)."""
    import torch

    from grpo_studio.engine.train import loop
    from grpo_studio.engine.rollout.generation import Rollout, left_pad

    real = loop.generate

    def fake(model, tokenizer, prompts, *, num_generations, device=None, **_kwargs):
        repeated = [p for p in prompts for _ in range(num_generations)]
        prompt_ids, prompt_mask = left_pad(repeated, tokenizer.pad_token_id, device)
        gen = torch.Generator().manual_seed(len(repeated))
        ids = torch.randint(100, min(len(tokenizer), 30000), (len(repeated), completion), generator=gen)
        # Texts that half the group formats right: the advantages are non-zero, so the loss really has
        # gradients to form (a group of equal rewards would let kernels skip work).
        texts = ["<think>t</think><answer>1</answer>" if i % 2 else "no tags" for i in range(len(repeated))]
        return Rollout(prompt_ids, prompt_mask, ids.to(device), torch.ones_like(ids).to(device), texts)

    loop.generate = fake
    try:
        yield
    finally:
        loop.generate = real


def load_trainer(config, workdir: Path):
    from grpo_studio.engine.train.loop import Trainer
    from grpo_studio.engine.common.runs import RunPaths

    paths = RunPaths(Path(tempfile.mkdtemp(dir=workdir, prefix="run-train-")))
    paths.root.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, paths, lambda kind, **fields: trainer.events.append({"type": kind, **fields}))
    trainer.events = []
    trainer.setup()
    return trainer


def synthetic_config(folder: Path, data: Path, **kwargs):
    """train_config with a format reward, which the synthetic rollout's texts split into two groups."""
    from grpo_studio.engine.common.config import RewardSpec

    config = train_config(folder, data, **kwargs)
    config.rewards = [RewardSpec("format_soft", 1.0)]
    return config


def measured_step(trainer) -> dict:
    """One training step (synthetic rollout): seconds, torch's peak allocated / reserved, nvidia-smi's."""
    import torch

    clean_cuda()
    trainer.step += 1
    started = time.perf_counter()
    with NvidiaSmiPeak(interval_s=0.05) as smi:
        trainer.train_step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    cuda = torch.cuda.is_available()
    metrics = [e for e in trainer.events if e["type"] == "metrics"][-1]
    return {"seconds": seconds, "peak_allocated": torch.cuda.max_memory_allocated() if cuda else None,
            "peak_reserved": torch.cuda.max_memory_reserved() if cuda else None,
            "nvidia_smi_process_peak": smi.process_peak, "reward_std": metrics["reward_std"]}


# ----------------------------------------------------------------------------------------------- part 3
def offload_on_off(workdir: Path, smoke: bool, deadline: float) -> dict:
    folder = model_dir(workdir, QWEN, smoke)
    completion = 16 if smoke else 4096
    data = write_dataset(workdir / "data.jsonl")
    configs = {mode: synthetic_config(folder, data, completion=completion, offload=mode) for mode in ("off", "on")}
    runs: dict = {mode: [] for mode in configs}
    with synthetic_generation(completion):
        trainers = {mode: load_trainer(config, workdir) for mode, config in configs.items()}
        offloading = {mode: trainers[mode].policy.offload is not None for mode in trainers}
        for mode, trainer in trainers.items():  # warm-up: pinned buffers, kernels, allocator
            measured_step(trainer)
        for _ in range(3):
            if time.monotonic() > deadline:
                break
            for mode, trainer in trainers.items():
                runs[mode].append(measured_step(trainer))
    del trainers
    clean_cuda()
    est = {mode: plan_figures(estimate(config, folder)) for mode, config in configs.items()}
    summary = {mode: {"step_s": stats([r["seconds"] for r in rs]),
                      "peak_allocated": stats([r["peak_allocated"] for r in rs]),
                      "peak_reserved": stats([r["peak_reserved"] for r in rs])} for mode, rs in runs.items()}
    saved = (None if not cuda_available() else
             summary["off"]["peak_allocated"]["median"] - summary["on"]["peak_allocated"]["median"])
    est_saved = est["off"]["components"]["activations"] - est["on"]["components"]["activations"]
    return {"settings": {"completion_tokens": completion, "generations": 8, "micro_batch": 8},
            "offload_active": offloading, "modes": summary, "runs": runs,
            "estimate_activations": {m: e["components"]["activations"] for m, e in est.items()},
            "ratios": {"step_time_on_vs_off": ratio(summary["on"]["step_s"]["median"],
                                                   summary["off"]["step_s"]["median"]),
                       "vram_saved_vs_estimated_activation_saving": ratio(saved, est_saved)},
            "vram_saved_bytes": saved, "estimated_activation_saving_bytes": est_saved,
            "goals": {"step_time_on_vs_off_at_most": 1.03}}


# ----------------------------------------------------------------------------------------------- part 4
def longest_fitting(workdir: Path, smoke: bool, deadline: float) -> dict:
    import torch

    folder = model_dir(workdir, LLAMA_8B, smoke)
    data = write_dataset(workdir / "data.jsonl")
    lengths = [8, 16] if smoke else [1024, 2048, 4096, 8192, 16384, 32768, 65536]
    config = synthetic_config(folder, data, completion=lengths[0], offload="on")
    trainer = load_trainer(config, workdir)
    total = torch.cuda.get_device_properties(0).total_memory if cuda_available() else None
    points, stopped, last_s = [], "all lengths ran", 0.0
    for length in lengths:
        config.grpo.max_completion_length = length
        est = plan_figures(estimate(config, folder))
        if total and est["training_phase_peak"] > 1.5 * total:
            stopped = f"{length} tokens: estimated {est['training_phase_peak'] / 2**30:.1f} GiB, far over the card"
            break
        if last_s and time.monotonic() + 2.5 * last_s > deadline:
            stopped = f"{length} tokens would not finish in the time budget (last length took {last_s:.0f} s)"
            break
        try:
            with synthetic_generation(length):
                step = measured_step(trainer)
        except torch.OutOfMemoryError as exc:
            clean_cuda()
            points.append({"completion_tokens": length, "oom": str(exc).splitlines()[0], "estimate": est})
            stopped = f"{length} tokens: out of memory"
            break
        last_s = step["seconds"]
        points.append({"completion_tokens": length, **step, "estimate": est,
                       "estimate_vs_reserved": ratio(est["training_phase_peak"], step["peak_reserved"]),
                       "estimate_vs_nvidia_smi": ratio(est["training_phase_peak"], step["nvidia_smi_process_peak"])})
    del trainer
    clean_cuda()
    fitted = [p for p in points if "oom" not in p]
    return {"settings": {"generations": 8, "load_in_4bit": config.load_in_4bit, "offload_activations": "on",
                         "phase": "training step (synthetic full-length rollout; generation not run)"},
            "points": points, "stopped": stopped,
            "longest_fitting_completion_tokens": fitted[-1]["completion_tokens"] if fitted else None}


def require_gpu_for_full(smoke: bool) -> None:
    if not smoke and not cuda_available():
        raise Skip("needs a CUDA GPU at full size (run --smoke for the CPU path)")
