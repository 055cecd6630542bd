"""VRAM preview: will this run fit, where does the memory go, and what would make it fit. Torch-free, instant.

    result = estimate_run(config)              # TrainConfig -> the JSON of `grpo-studio estimate --json`
    print(format_table(result))

`result` = {model, settings, plans: {grpo_studio: {components, total, ...}, naive: {components, total, ...}},
gpu: {name, total, free} | null, verdict: fits | tight | too_big | no_gpu, suggestions: [{text, changes, total}]}.
The formulas are in estimate_model.py, the model shapes come from model_configs.py, the GPU from
estimate_gpu.py. Suggestions are found by re-estimating with changed settings, so they are always consistent
with the numbers shown; their `changes` are dotted TrainConfig paths the GUI can apply as they are.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.estimate_gpu import detect_gpu
from grpo_studio.engine.common.estimate_model import GIB, Arch, Settings, grpo_studio_plan, naive_plan
from grpo_studio.engine.common.model_configs import load_model_config
from grpo_studio.engine.common.reward_model_memory import memory_bytes

__all__ = ["COMPONENT_LABELS", "FIT_FRACTION", "detect_gpu", "estimate_run", "format_table", "load_model_config",
           "needs_offload", "settings_from_config"]

# A plan "fits" below this share of the free memory: the rest absorbs allocator fragmentation and the desktop's
# own use of the card, which move during a run. Between it and all of the free memory the verdict is "tight".
FIT_FRACTION = 0.9

COMPONENT_LABELS = {
    "weights": "base weights",
    "lora_and_optimizer": "LoRA + grads + optimizer",
    "activations": "activation checkpoints",
    "recompute": "one layer's recompute",
    "logits": "GRPO logits / loss",
    "kv_cache": "KV cache (generation)",
    "generation_workspace": "generation workspace",
    "inference_weights": "separate inference copy",
    "cuda_overhead": "CUDA context",
    "reward_models": "reward models",  # 0 unless the config names one
}


def settings_from_config(config: TrainConfig) -> Settings:
    """The memory-relevant settings of a run. offload_activations=auto is estimated as on: the engine turns
    offloading on exactly when the run would not fit otherwise, so the run fits iff the offloaded plan does
    (and estimating it this way keeps the estimate monotonic in every setting)."""
    targets = config.lora.target_modules
    return Settings(
        load_in_4bit=bool(config.load_in_4bit),
        dtype_bytes=4 if config.dtype == "float32" else 2,
        lora_r=int(config.lora.r),
        lora_targets=targets if targets == "all-linear" else tuple(targets),
        optimizer=config.optim.optimizer,
        num_generations=int(config.grpo.num_generations),
        prompts_per_step=per_gpu_prompts(config),  # each GPU holds its share of the step (data parallel)
        max_prompt_length=int(config.grpo.max_prompt_length),
        max_completion_length=int(config.grpo.max_completion_length),
        micro_batch_size=int(config.batch.micro_batch_size),
        generation_batch_size=config.batch.generation_batch_size,
        chunk_size=config.grpo.chunk_size,
        gradient_checkpointing=bool(config.gradient_checkpointing),
        offload=config.offload_activations != "off",
        entropy_pass=config.grpo.top_entropy_quantile < 1.0 or config.grpo.entropy_coef != 0.0
        or config.grpo.use_adaptive_entropy,
        # the fast sampler keeps its own log-probs only when it samples in another dtype than an fp32 run trains
        sampler_logps=config.dtype == "float32" and config.grpo.generation_dtype != "float32" and (
            config.grpo.vllm_importance_sampling_correction or config.grpo.off_policy_mask_threshold is not None),
    )



def default_settings(**changes: Any) -> Settings:
    """The settings of a run with TrainConfig's defaults, with `changes` (Settings field -> value) applied."""
    return dataclasses.replace(settings_from_config(TrainConfig()), **changes)

def per_gpu_prompts(config: TrainConfig) -> int:
    """The prompts one GPU holds per step: prompts_per_step / gpus (torchrun ranks split the step)."""
    return max(1, int(config.batch.prompts_per_step) // max(1, int(getattr(config, "gpus", 1))))


def estimate_run(config: TrainConfig, model_config: dict | None = None, gpu: dict | None | str = "detect") -> dict:
    """Estimate both plans for `config`; `model_config` from load_model_config (loaded from config.model when
    None); `gpu` = "detect" (nvidia-smi), None (no GPU) or {name, total, free} in bytes."""
    model_config = model_config if model_config is not None else load_model_config(config.model)
    if config.device == "cpu":
        gpu = None
    elif isinstance(gpu, str):  # "detect"
        gpu = detect_gpu()
    arch = Arch.from_config(model_config)
    settings = settings_from_config(config)
    ours = with_reward_models(grpo_studio_plan(arch, settings), config, settings)
    verdict = _verdict(ours["total"], gpu)
    return {
        "model": _model_summary(model_config, arch),
        "settings": _settings_summary(config, settings),
        "plans": {"grpo_studio": ours, "naive": with_reward_models(naive_plan(arch, settings), config, settings)},
        "gpu": dict(gpu) if gpu else None,
        "verdict": verdict,
        "suggestions": suggestions(config, arch, gpu) if gpu and verdict in ("tight", "too_big") else [],
    }


def needs_offload(config: TrainConfig, gpu: dict, model_config: dict | None = None) -> bool:
    """What `offload_activations: auto` decides: offload when the plan *without* offloading would not fit
    `gpu` (FIT_FRACTION of its free memory). The displayed plan for auto is the offloaded one (see
    settings_from_config), so this asks the other plan on purpose."""
    model_config = model_config if model_config is not None else load_model_config(config.model)
    settings = dataclasses.replace(settings_from_config(config), offload=False)
    return grpo_studio_plan(Arch.from_config(model_config), settings)["total"] > FIT_FRACTION * gpu["free"]


def with_reward_models(plan: dict, config: TrainConfig, settings: Settings) -> dict:
    """Reward models stay loaded on the training device (in either plan): their memory adds to the persistent
    part."""
    extra = sum(memory_bytes(load_model_config(spec.model), spec.load_in_4bit, settings.dtype_bytes,
                             settings.seq_len) for spec in config.rewards if spec.model)
    return {**plan, "components": {**plan["components"], "reward_models": extra}, "total": plan["total"] + extra}


def _verdict(total: int, gpu: dict | None) -> str:
    if not gpu:
        return "no_gpu"
    if total <= FIT_FRACTION * gpu["free"]:
        return "fits"
    return "tight" if total <= gpu["free"] else "too_big"


def _model_summary(model_config: dict, arch: Arch) -> dict:
    return {**model_config, "params": arch.params()}


def _settings_summary(config: TrainConfig, s: Settings) -> dict:
    return {
        "load_in_4bit": s.load_in_4bit, "dtype": config.dtype, "lora_r": s.lora_r,
        "lora_target_modules": config.lora.target_modules, "optimizer": s.optimizer,
        "num_generations": s.num_generations, "prompts_per_step": s.prompts_per_step,
        "max_prompt_length": s.max_prompt_length, "max_completion_length": s.max_completion_length,
        "micro_batch_size": s.micro_batch, "generation_batch_size": s.generation_batch, "chunk_size": s.chunk_size,
        "gradient_checkpointing": s.gradient_checkpointing, "offload_activations": config.offload_activations,
        "offload_effective": s.offload and s.gradient_checkpointing,
        "gpus": int(getattr(config, "gpus", 1)),  # the figures are per GPU; prompts_per_step is one GPU's share
    }


# ------------------------------------------------------------------------------------------- suggestions
def with_changes(config: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """A copy of `config` with dotted-path changes applied ({"grpo.max_completion_length": 512})."""
    out = copy.deepcopy(config)
    for path, value in changes.items():
        *parents, name = path.split(".")
        target = out
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    return out


def _halvings(value: int, floor: int) -> list[int]:
    out = []
    while value // 2 >= floor:
        value //= 2
        out.append(value)
    return out


def _completion_lengths(value: int) -> list[int]:
    """Shorter completion budgets, longest first, in steps of 64 tokens (then 16 below 64)."""
    steps = list(range((value - 1) // 64 * 64, 63, -64))
    return steps + [n for n in (48, 32, 16) if n < value]


# Each family: a dotted path, a label, and the candidate values from mildest to strongest, ordered by how
# little the change costs the user: pure memory knobs first, then ones that change what is learned.
Family = tuple[str, str, Callable[[TrainConfig, Settings], list]]
FAMILIES: list[Family] = [
    ("offload_activations", "offload activations to CPU RAM",
     lambda c, s: ["on"] if c.offload_activations == "off" and c.gradient_checkpointing else []),
    ("gradient_checkpointing", "gradient checkpointing", lambda c, s: [] if c.gradient_checkpointing else [True]),
    ("batch.micro_batch_size", "micro-batch size", lambda c, s: _halvings(s.micro_batch, 1)),
    ("batch.generation_batch_size", "generation batch size", lambda c, s: _halvings(s.generation_batch, 1)),
    ("optim.optimizer", "optimizer", lambda c, s: ["adamw_8bit"] if s.optimizer != "adamw_8bit" else []),
    ("load_in_4bit", "4-bit base weights", lambda c, s: [] if s.load_in_4bit else [True]),
    ("lora.r", "LoRA rank", lambda c, s: _halvings(s.lora_r, 4)),
    ("grpo.max_completion_length", "max completion length", lambda c, s: _completion_lengths(s.max_completion_length)),
    ("grpo.num_generations", "generations per prompt", lambda c, s: list(range(s.num_generations - 1, 1, -1))),
]


def _total(config: TrainConfig, arch: Arch) -> int:
    return grpo_studio_plan(arch, settings_from_config(config))["total"]


def _mildest(config: TrainConfig, arch: Arch, path: str, values: list, budget: float) -> Any:
    """The first (mildest) value of `values` under budget; candidates only shrink memory, so search."""
    lo, hi = 0, len(values) - 1
    found = None
    while lo <= hi:  # the totals fall along `values`, so the first fitting one is found by bisection
        mid = (lo + hi) // 2
        if _total(with_changes(config, {path: values[mid]}), arch) <= budget:
            found, hi = values[mid], mid - 1
        else:
            lo = mid + 1
    return found


def suggestions(config: TrainConfig, arch: Arch, gpu: dict, limit: int = 2) -> list[dict]:
    """Up to `limit` single changes that make the run fit; else one combination; else a plain warning."""
    budget = FIT_FRACTION * gpu["free"]
    settings = settings_from_config(config)
    singles = []
    for path, label, candidates in FAMILIES:
        value = _mildest(config, arch, path, candidates(config, settings), budget)
        if value is not None:
            singles.append(_suggestion(config, arch, {path: value}, [(label, path)]))
        if len(singles) == limit:
            return singles
    if singles:
        return singles
    changes, labels, current = {}, [], config
    for path, label, candidates in FAMILIES:
        values = candidates(current, settings_from_config(current))
        if not values:
            continue
        value = _mildest(current, arch, path, values, budget)
        changes[path] = value if value is not None else values[-1]
        labels.append((label, path))
        current = with_changes(config, changes)
        if value is not None:
            changes = _relax(config, arch, changes, budget)
            return [_suggestion(config, arch, changes, [pair for pair in labels if pair[1] in changes])]
    text = (f"does not fit in {gpu['free'] / GIB:.1f} GiB free even with every setting at its leanest "
            f"({_total(current, arch) / GIB:.1f} GiB): choose a smaller model or a GPU with more memory")
    return [{"text": text, "changes": {}, "total": _total(current, arch)}]


def _relax(config: TrainConfig, arch: Arch, changes: dict, budget: float) -> dict:
    """Undo what the greedy pass did not need: drop changes the others make unnecessary (latest, i.e. most
    costly to the user, first), then soften each remaining one to its mildest value given the rest."""
    changes = dict(changes)
    for path in reversed(list(changes)):
        trial = {k: v for k, v in changes.items() if k != path}
        if trial and _total(with_changes(config, trial), arch) <= budget:
            changes = trial
    families = {path: candidates for path, _, candidates in FAMILIES}
    for path in list(changes):
        others = with_changes(config, {k: v for k, v in changes.items() if k != path})
        value = _mildest(others, arch, path, families[path](config, settings_from_config(config)), budget)
        if value is not None:
            changes[path] = value
    return changes


def _suggestion(config: TrainConfig, arch: Arch, changes: dict, labels: list[tuple[str, str]]) -> dict:
    total = _total(with_changes(config, changes), arch)
    parts = []
    for label, path in labels:
        old = config
        for name in path.split("."):
            old = getattr(old, name)
        parts.append(f"{label} {_show(old)} -> {_show(changes[path])}")
    return {"text": "; ".join(parts) + f" (peak {total / GIB:.1f} GiB)", "changes": changes, "total": total}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "auto" if value is None else str(value)


# ------------------------------------------------------------------------------------------------ table
def _gib(value: int) -> str:
    return f"{value / GIB:8.2f} GiB"


def format_table(result: dict) -> str:
    """Both plans side by side, then the GPU, the verdict and the suggestions, for the terminal."""
    model, s, plans = result["model"], result["settings"], result["plans"]
    ours, naive = plans["grpo_studio"], plans["naive"]
    lines = [
        f"Model: {model['name']} ({model['source']}): {model['params'] / 1e9:.2f} B parameters, "
        f"{model['model_type']}, {model['num_hidden_layers']} layers, hidden {model['hidden_size']}, "
        f"vocab {model['vocab_size']}",
        f"Settings: {_weights_label(s)} weights, LoRA r={s['lora_r']}, {s['optimizer']}, "
        f"{s['prompts_per_step']} prompts x {s['num_generations']} generations, {s['max_prompt_length']} prompt + "
        f"{s['max_completion_length']} completion tokens, micro-batch {s['micro_batch_size']}, "
        f"offload {'on' if s['offload_effective'] else 'off'}"
        + (f"; per GPU of {s['gpus']} (each holds its share of the step's prompts)" if s.get("gpus", 1) > 1 else ""),
        "",
        f"{'':28}{'GRPO Studio':>14}{'naive TRL+FA2':>16}",
    ]
    for key, label in COMPONENT_LABELS.items():
        lines.append(f"{label:28}{_gib(ours['components'][key]):>14}{_gib(naive['components'][key]):>16}")
    lines.append(f"{'peak':28}{_gib(ours['total']):>14}{_gib(naive['total']):>16}")
    phases = ours["phases"]
    lines.append(f"GRPO Studio's generation ({phases['generation'] / GIB:.2f} GiB) and training "
                 f"({phases['training'] / GIB:.2f} GiB) take turns: the peak is the {ours['peak_phase']} phase.")
    if ours["host_ram"]:
        lines.append(f"Offloaded activation checkpoints use {ours['host_ram'] / GIB:.2f} GiB of CPU RAM.")
    gpu = result["gpu"]
    if gpu:
        lines.append(f"GPU: {gpu['name']}, {gpu['total'] / GIB:.1f} GiB total, {gpu['free'] / GIB:.1f} GiB free "
                     f"-> {result['verdict'].replace('_', ' ')}")
    else:
        lines.append("GPU: none found -> no_gpu (the demo trains on the CPU; real models need an NVIDIA GPU)")
    for item in result["suggestions"]:
        lines.append(f"  try: {item['text']}")
    return "\n".join(lines)


def _weights_label(settings: dict) -> str:
    if settings["load_in_4bit"]:
        return "4-bit NF4"
    return {"float32": "fp32", "float16": "fp16"}.get(settings["dtype"], "bf16")
