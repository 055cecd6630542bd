"""Auto-fit: settings that make a run fit the GPU it will train on (or the CPU's free RAM), chosen with the
estimator, with the reasons. Torch-free: `grpo-studio estimate --fit`, the engine (fit: auto) and the New-run
page's "Fit to my GPU" all call `fit_config`.

    result = fit_config(config, memory=memory_target(config))
    result.config      # the fitted TrainConfig (a copy; `config` is untouched)
    result.summary()   # what was chosen and why, one line each

What it may change, cheapest for the user first: gradient checkpointing and offloading (time only), the
micro-batch and the generation batch (time only: the same updates, see the engine's generation batching and
gradient accumulation), then 4-bit base weights (a little precision). The completion length changes what is
learned, so it is lowered only where the user allows it (fit_may_reduce); G is never lowered, since with
micro-batch and generation batch 1 the memory does not grow with G (it only costs time). Within the
cheapest step that fits, the micro-batch and the generation batch are the largest that fit (speed), and the
result always says the longest completion that would fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.estimate import (
    FIT_FRACTION,
    per_gpu_prompts,
    settings_from_config,
    with_changes,
    with_reward_models,
)
from grpo_studio.engine.common.estimate_gpu import detect_gpu
from grpo_studio.engine.common.estimate_model import GIB, Arch, grpo_studio_plan
from grpo_studio.engine.common.model_configs import load_model_config

FITS_AS_SET = "the run fits as set"
# The longest completion searched for when stating what fits, where the model's context is not known.
LONGEST_SEARCHED = 1_000_000

LABELS = {
    "gradient_checkpointing": "gradient checkpointing",
    "offload_activations": "offload activations",
    "load_in_4bit": "4-bit base weights",
    "batch.micro_batch_size": "micro-batch size",
    "batch.generation_batch_size": "generation batch size",
    "grpo.max_completion_length": "max completion length",
    "dtype": "dtype",
}


@dataclass
class FitResult:
    config: TrainConfig  # the fitted copy
    changes: dict[str, tuple[Any, Any]]  # dotted path -> (old, new)
    reasons: list[str]  # why each change (and why nothing else)
    fits: bool
    total: int  # the fitted plan's estimated peak, bytes
    memory: dict  # {name, free} of what it was fitted to (a GPU, or "CPU RAM")
    longest_completion: int | None = None  # the longest max_completion_length that fits (micro/gen batch 1)
    notes: list[str] = field(default_factory=list)

    @property
    def budget(self) -> float:
        return FIT_FRACTION * self.memory["free"]

    def summary(self) -> str:
        head = (f"fitted to {self.memory['name']} ({self.memory['free'] / GIB:.1f} GiB free; plans stay under "
                f"{FIT_FRACTION:.0%}, {self.budget / GIB:.1f} GiB): estimated peak {self.total / GIB:.1f} GiB -> "
                + ("fits" if self.fits else "does NOT fit"))
        lines = [head]
        for path, (old, new) in self.changes.items():
            lines.append(f"  {LABELS.get(path, path)}: {show(old)} -> {show(new)}")
        if not self.changes and self.fits:
            lines[0] += " as set, nothing to change"
        lines += [f"  why: {reason}" for reason in self.reasons if reason != FITS_AS_SET]
        if self.longest_completion is not None:
            lines.append(f"  longest completion that fits (micro-batch and generation batch 1, within the model's "
                         f"context): {self.longest_completion} tokens")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"fits": self.fits, "total": self.total, "budget": self.budget, "memory": dict(self.memory),
                "changes": {path: {"old": old, "new": new} for path, (old, new) in self.changes.items()},
                "reasons": list(self.reasons), "longest_completion": self.longest_completion,
                "notes": list(self.notes)}


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "all at once" if value is None else str(value)


def memory_target(config: TrainConfig, gpu: dict | None | str = "detect") -> dict:
    """What the run will live in: the GPU (detected, or the given {name, total, free}) unless the run is on the
    CPU or there is none; then the RAM available now (psutil), which is what the kernel's OOM killer judges."""
    if config.device != "cpu":
        found = detect_gpu() if isinstance(gpu, str) else gpu  # "detect"
        if found:
            return {"name": found["name"], "free": int(found["free"]), "kind": "gpu"}
    import psutil

    return {"name": "CPU RAM", "free": int(psutil.virtual_memory().available), "kind": "ram"}


def fit_config(config: TrainConfig, model_config: dict | None = None, memory: dict | None = None,
               may_reduce: str | None = None) -> FitResult:
    """The cheapest settings under FIT_FRACTION of `memory["free"]` (default: memory_target(config))."""
    model_config = model_config if model_config is not None else load_model_config(config.model)
    memory = memory if memory is not None else memory_target(config)
    may_reduce = may_reduce if may_reduce is not None else getattr(config, "fit_may_reduce", "nothing")
    on_gpu = memory.get("kind", "gpu") == "gpu"
    context = model_config.get("max_position_embeddings")
    longest = context - config.grpo.max_prompt_length if context else LONGEST_SEARCHED
    fitter = _Fitter(Arch.from_config(model_config), FIT_FRACTION * memory["free"], max(1, longest))
    start = _as_planned(config, on_gpu)
    reasons: list[str] = []
    notes: list[str] = []
    if not on_gpu:
        notes.append("on the CPU the plan is judged in fp32 against the RAM available now")

    if fitter.fits(start):
        return _result(config, start, memory, fitter, reasons + [FITS_AS_SET], notes)

    levels = _levels(start, on_gpu)
    for changes, why in levels:
        lean = with_changes(start, {**changes, **_LEANEST})
        if fitter.fits(lean):
            reasons += why
            return _result(config, fitter.largest_batches(with_changes(start, changes), reasons), memory, fitter,
                           reasons, notes)
    changes, why = levels[-1] if levels else ({}, [])
    leanest = with_changes(start, {**changes, **_LEANEST})
    reduced = fitter.reduce(leanest, may_reduce)
    if reduced is not None:
        reasons += why + [reduced[1]]
        fitted = fitter.largest_batches(with_changes(start, {**changes, **reduced[0]}), reasons)
        return _result(config, fitted, memory, fitter, reasons, notes)
    reasons += why
    if may_reduce == "nothing":
        reasons.append("even micro-batch 1 and generation batch 1 do not fit: allow lowering the completion "
                       "length (fit_may_reduce: max_completion_length), or choose a smaller model")
    else:
        reasons.append("even a 1-token completion does not fit: choose a smaller model or a bigger GPU")
    return _result(config, leanest, memory, fitter, reasons, notes, fits=False)


_LEANEST = {"batch.micro_batch_size": 1, "batch.generation_batch_size": 1}


def _as_planned(config: TrainConfig, on_gpu: bool) -> TrainConfig:
    """The config as the engine would run it: on the CPU the weights are fp32 and nothing is offloaded."""
    if on_gpu:
        return config
    return with_changes(config, {"dtype": "float32" if config.dtype == "auto" else config.dtype,
                                 "offload_activations": "off"})


def _levels(config: TrainConfig, on_gpu: bool) -> list[tuple[dict, list[str]]]:
    """Cumulative memory-only steps, cheapest first, each with its reasons."""
    levels: list[tuple[dict, list[str]]] = [({}, [])]
    changes: dict[str, Any] = {}
    why: list[str] = []
    if not config.gradient_checkpointing:
        changes["gradient_checkpointing"] = True
        why = why + ["gradient checkpointing keeps one input per layer instead of every activation"]
        levels.append((dict(changes), list(why)))
    if on_gpu and config.offload_activations == "off":
        changes["offload_activations"] = "on"
        why = why + ["offloading moves the layer checkpoints to CPU RAM"]
        levels.append((dict(changes), list(why)))
    if on_gpu and not config.load_in_4bit:
        changes["load_in_4bit"] = True
        why = why + ["16-bit base weights do not leave room even at micro-batch 1: 4-bit NF4 weights take ~4x less"]
        levels.append((dict(changes), list(why)))
    return levels


class _Fitter:
    def __init__(self, arch: Arch, budget: float, longest: int) -> None:
        self.arch, self.budget, self.longest = arch, budget, longest  # longest: the model's context - prompt

    def total(self, config: TrainConfig) -> int:
        settings = settings_from_config(config)
        return with_reward_models(grpo_studio_plan(self.arch, settings), config, settings)["total"]

    def fits(self, config: TrainConfig) -> bool:
        return self.total(config) <= self.budget

    def _largest(self, config: TrainConfig, path: str, values: list) -> Any:
        """The first of `values` (largest first; totals fall along them) that fits, by bisection."""
        lo, hi, found = 0, len(values) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.fits(with_changes(config, {path: values[mid]})):
                found, hi = values[mid], mid - 1
            else:
                lo = mid + 1
        return found

    def largest_batches(self, config: TrainConfig, reasons: list[str]) -> TrainConfig:
        """The largest micro-batch (with generation batch 1), then the largest generation batch that fit.
        Generation and training take turns, so each is bounded by its own phase."""
        rows = per_gpu_prompts(config) * config.grpo.num_generations
        micro_now = config.batch.micro_batch_size
        lean_gen = with_changes(config, {"batch.generation_batch_size": 1})
        micro = self._largest(lean_gen, "batch.micro_batch_size", _halvings(micro_now)) or 1
        config = with_changes(config, {"batch.micro_batch_size": micro})
        gen_now = config.batch.generation_batch_size or rows
        gen = self._largest(config, "batch.generation_batch_size", _halvings(min(gen_now, rows))) or 1
        config = with_changes(config, {"batch.generation_batch_size": None if gen >= rows else gen})
        if micro < micro_now:
            reasons.append(f"micro-batch {micro_now} puts the training phase over the budget; {micro} is the "
                           "largest that fits (the rest is gradient accumulation: the same update)")
        if gen < min(gen_now, rows):
            reasons.append(f"generating all {min(gen_now, rows)} completions at once needs a KV cache over the "
                           f"budget; {gen} at a time is the largest that fits (the same completions)")
        return config

    def reduce(self, config: TrainConfig, what: str) -> tuple[dict, str] | None:
        """The longest completion (below the current one) that fits, if the user allows it. (Not G: at
        micro-batch and generation batch 1 the plan does not grow with G, so lowering it never helps.)"""
        if what == "max_completion_length":
            now = config.grpo.max_completion_length
            best = self._largest_int(config, "grpo.max_completion_length", 1, now - 1)
            if best is None:
                return None
            return ({"grpo.max_completion_length": best},
                    f"lowered the completion length to {best} tokens, the longest that fits (fit_may_reduce)")
        return None

    def _largest_int(self, config: TrainConfig, path: str, lo: int, hi: int) -> int | None:
        """The largest integer value in [lo, hi] of `path` that fits (totals grow with it)."""
        if hi < lo or not self.fits(with_changes(config, {path: lo})):
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.fits(with_changes(config, {path: mid})):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def longest_completion(self, config: TrainConfig) -> int | None:
        lean = with_changes(config, _LEANEST)
        return self._largest_int(lean, "grpo.max_completion_length", 1, self.longest)


def _halvings(value: int) -> list[int]:
    """value, value/2, ..., 1 (largest first)."""
    out = [max(1, int(value))]
    while out[-1] > 1:
        out.append(out[-1] // 2)
    return out


def _result(original: TrainConfig, planned: TrainConfig, memory: dict, fitter: _Fitter, reasons: list[str],
            notes: list[str], fits: bool = True) -> FitResult:
    """Carry the fitted values back onto the user's config (the CPU's fp32 planning stays out of it)."""
    changes, fitted = {}, original
    for path in LABELS:
        if path in ("dtype",) or (path == "offload_activations" and memory.get("kind") == "ram"):
            continue
        old, new = _get(original, path), _get(planned, path)
        if old != new:
            changes[path] = (old, new)
    if changes:
        fitted = with_changes(original, {path: new for path, (_, new) in changes.items()})
    return FitResult(fitted, changes, reasons, fits, fitter.total(planned), dict(memory),
                     fitter.longest_completion(planned), notes)


def _get(config: Any, path: str) -> Any:
    for name in path.split("."):
        config = getattr(config, name)
    return config

