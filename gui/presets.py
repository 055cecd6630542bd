"""Starting points for the New run form: the CPU demo, and settings sized for 6, 12 and 24 GB GPUs.

The GPU presets change only the memory knobs (and pick a model that suits the card when the form still says
"demo"); the dataset and rewards the user chose stay. The VRAM bar then shows how well they fit."""
from __future__ import annotations

import copy

from grpo_studio.engine.config import DEMO, set_path

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
    from grpo_studio.engine.demo import demo_config
    return demo_config().to_dict()


def apply_preset(name: str, data: dict) -> dict:
    """A new config dict: `data` with the preset's settings."""
    if name == PRESETS[0]:
        return demo_data()
    out = copy.deepcopy(data)
    changes = {**_GPU_COMMON, **_GPU[name]}
    if out.get("model") not in (DEMO, "", None):
        changes.pop("model")  # the user chose a model: keep it, only size the settings
    for path, value in changes.items():
        set_path(out, path, value)
    return out
