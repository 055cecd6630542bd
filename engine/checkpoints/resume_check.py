"""What a resume may change: the config a run continues with against the one its checkpoint was written with.

A checkpoint holds the model's adapter, the optimizer state (which carries its own learning rate) and the
data position, so most settings cannot change mid-run without the run silently doing something other than
config.yaml says: another model or LoRA rank does not even fit the saved weights, and a new learning rate
would be ignored by the restored optimizer. Those are refused, listed with their old and new values.
Settings that only say how long to train and how to log and save are applied, and named. Torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.errors import ConfigError

# Settings a resumed run honours (the rest of the config is fixed by the checkpoint).
CHANGEABLE = ("max_steps", "num_train_epochs", "checkpoint_every", "checkpoint_keep", "log_samples_every",
              "reward_timeout_s", "eval.path", "eval.split", "eval.num_prompts", "eval.every", "eval.greedy",
              # memory-only: the same updates at any size (gradient accumulation, row-keyed sampling); recovery
              # from out-of-memory lowers them mid-run (oom_recovery.py), auto-fit chooses them (fit.py)
              "batch.micro_batch_size", "batch.generation_batch_size", "fit", "fit_may_reduce")


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """{"grpo.beta": 0.0, ...}: dotted paths to leaf values (lists stay whole)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """Dotted path -> (old, new) for every setting both configs have and that differs."""
    before, after = flatten(old), flatten(new)
    return {key: (before[key], after[key]) for key in before if key in after and before[key] != after[key]}


def check_resume(checkpoints: Path, config: TrainConfig) -> list[str]:
    """Compare `config` with the newest checkpoint's; raise ConfigError for changes a resume cannot honour.
    Returns notes for the user (the changes that will be applied)."""
    from grpo_studio.engine.checkpoints.files import newest_checkpoint_config

    found = newest_checkpoint_config(checkpoints)
    if found is None:
        return []
    name, saved = found
    if saved is None:
        return [f"{name} predates saved configs: the settings could not be compared with it"]
    changes = config_changes(saved, config.to_dict())
    refused = {k: v for k, v in changes.items() if k not in CHANGEABLE}
    if refused:
        lines = [f"{key}: {_show(old)} -> {_show(new)}" for key, (old, new) in sorted(refused.items())]
        raise ConfigError(f"config.yaml was changed since {name} in ways a resume cannot honour:\n  "
                          + "\n  ".join(lines),
                          "put these settings back to the values on the left to continue the run, or start "
                          f"a new run with the new settings; only {', '.join(CHANGEABLE)} can change on resume")
    return [f"applied on resume: {key} {_show(old)} -> {_show(new)}" for key, (old, new) in sorted(changes.items())]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"
