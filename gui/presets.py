"""Starting points for the New run form: the CPU demo, and settings sized for 6, 12 and 24 GB GPUs.

The GPU presets change only the memory knobs (and pick a model that suits the card when the form still says
"demo"); the dataset and rewards the user chose stay. The VRAM bar then shows how well they fit.

Demo settings belong to the demo: the demo's own reward file and the knobs it tunes for a 130k-parameter model
on a CPU (learning rate 2e-3, 6-token answers, float32, ...) must not follow the user to a real model, so
leaving the demo (`leave_demo`) takes them out again."""
from __future__ import annotations

import copy

from grpo_studio.engine.common.config import DEMO, TrainConfig, get_path, set_path

# Never reset when leaving the demo: what the user picks anyway (the model), data that works with any model
# (the demo's addition task stays until the user chooses a dataset), and the seed.
_KEEP_ON_LEAVING = ("model", "dataset", "seed", "rewards")

PRESETS = ("Demo (CPU)", "6 GB GPU", "12 GB GPU", "24 GB GPU")

_GPU = {
    "6 GB GPU": {"model": "Qwen/Qwen2.5-1.5B-Instruct", "lora.r": 16, "grpo.num_generations": 6,
                 "batch.prompts_per_step": 2, "batch.micro_batch_size": 4, "grpo.max_completion_length": 256,
                 "grpo.max_prompt_length": 256},
    "12 GB GPU": {"model": "Qwen/Qwen2.5-3B-Instruct", "lora.r": 32, "grpo.num_generations": 8,
                  "batch.prompts_per_step": 2, "batch.micro_batch_size": 4, "grpo.max_completion_length": 512,
                  "grpo.max_prompt_length": 256},
    "24 GB GPU": {"model": "Qwen/Qwen2.5-7B-Instruct", "lora.r": 32, "grpo.num_generations": 8,
                  "batch.prompts_per_step": 4, "batch.micro_batch_size": 8, "grpo.max_completion_length": 1024,
                  "grpo.max_prompt_length": 512},
}
# Shared by every GPU preset: 4-bit weights, 8-bit optimizer states, checkpointing with offload when needed.
_GPU_COMMON = {"load_in_4bit": True, "optim.optimizer": "adamw_8bit", "gradient_checkpointing": True,
               "offload_activations": "auto", "dtype": "auto", "device": "auto", "optim.learning_rate": 5e-6,
               "grpo.temperature": 1.0, "max_steps": 500, "checkpoint_every": 50, "log_samples_every": 1}


def demo_data() -> dict:
    from grpo_studio.engine.common.demo import demo_config
    return demo_config().to_dict()


def apply_preset(name: str, data: dict) -> dict:
    """A new config dict: `data` with the preset's settings."""
    if name == PRESETS[0]:
        return demo_data()
    changes = {**_GPU_COMMON, **_GPU[name]}
    if data.get("model") == DEMO:
        data, _ = leave_demo(data)
    else:
        data = copy.deepcopy(data)
    if data.get("model") not in (DEMO, "", None):
        changes.pop("model")  # the user chose a model: keep it, only size the settings
    for path, value in changes.items():
        set_path(data, path, value)
    return data


def leave_demo(data: dict) -> tuple[dict, list[str]]:
    """`data` from a demo form, made fit for a real model: the demo's reward file removed and every setting the
    demo tunes put back to its default where it still holds the demo's value (what the user changed stays).
    Returns (new data, the names of what was reset)."""
    from grpo_studio.engine.common.demo import demo_format_reward

    out = copy.deepcopy(data)
    reset: list[str] = []
    demo_reward = demo_format_reward()
    rewards = [r for r in out.get("rewards") or [] if r.get("name") != demo_reward]
    if len(rewards) != len(out.get("rewards") or []):
        reset.append("the demo's reward file")
        out["rewards"] = rewards or TrainConfig().to_dict()["rewards"]
    demo, default = demo_data(), TrainConfig().to_dict()
    for path in _leaf_paths(default):
        if path.split(".")[0] in _KEEP_ON_LEAVING:
            continue
        try:
            value = get_path(out, path)
        except (KeyError, TypeError):
            continue
        if value == get_path(demo, path) != get_path(default, path):
            set_path(out, path, copy.deepcopy(get_path(default, path)))
            reset.append(path)
    return out, reset


def _leaf_paths(data: dict, prefix: str = "") -> list[str]:
    paths = []
    for key, value in data.items():
        if isinstance(value, dict):
            paths += _leaf_paths(value, f"{prefix}{key}.")
        else:
            paths.append(f"{prefix}{key}")
    return paths
