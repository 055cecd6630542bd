"""The run configuration: one tree of dataclasses, read from YAML and validated before any weights load.

Names follow TRL's GRPOConfig where both have the knob (learning_rate, max_grad_norm, num_generations,
max_completion_length, beta, epsilon_high, loss_type, scale_rewards, max_steps, seed, ...), so settings
and reward functions move over from TRL unchanged. Torch-free: the GUI and the estimator import it.

Every field carries its own check in `metadata`: `range=(lo, hi)` (None = open) or `choices=(...)`.
`validate()` walks the tree and reports every problem at once, each naming its dotted field path.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grpo_studio.engine.common.choices import (
    DEVICES,
    DTYPES,
    FIT_MAY_REDUCE,
    FIT_MODES,
    GENERATION_BACKENDS,
    IMPORTANCE_SAMPLING_LEVELS,
    LOSS_TYPES,
    MULTI_OBJECTIVE_AGGREGATIONS,
    OFFLOAD,
    OPTIMIZERS,
    OVERLONG,
    SCALE_REWARDS,
    SCHEDULERS,
)
from grpo_studio.engine.common.config_fields import build_dataclass, setting
from grpo_studio.engine.common.errors import ConfigError, FieldError
from grpo_studio.engine.common.eval_config import EvalConfig, eval_problems
from grpo_studio.engine.common.loss_settings import LossOptionSettings, loss_option_errors

DEMO = "demo"


@dataclass
class LoraConfig:
    r: int = setting(16, range=(1, 1024), help="LoRA rank: more capacity, more memory for adapter + optimizer.")
    alpha: float = setting(32.0, range=(0.0, None), help="LoRA scale numerator (scale = alpha / r).")
    dropout: float = setting(0.0, range=(0.0, 0.9), help="Dropout on the LoRA input.")
    target_modules: Any = setting("all-linear", help="'all-linear' or a list of module names (q_proj, ...).")
    use_rslora: bool = setting(False, help="Rank-stabilised LoRA: scale = alpha / sqrt(r).")


@dataclass
class DatasetConfig:
    path: str = setting(DEMO, help="Local file/folder (jsonl, json, csv, parquet), a cached hub id, or 'demo'.")
    split: str = setting("train", help="Split to train on.")
    prompt_column: str = setting("prompt", help="Column with the prompt: a string or a list of chat messages.")
    question_column: str | None = setting(None, help="Alternative to prompt_column: a question rendered with "
                                                "the system prompt through the chat template.")
    answer_column: str | None = setting("answer", help="Column with the reference answer (for math_correct).")
    system_prompt_column: str | None = setting(None, help="Optional per-row system prompt column.")
    overlong_prompts: str = setting("truncate", choices=OVERLONG, help="What to do with prompts longer than "
                                                                   "grpo.max_prompt_length.")


@dataclass
class RewardSpec:
    name: str = setting("math_correct", help="A built-in reward name or 'path/to/file.py:function'.")
    weight: float = setting(1.0, help="Weight in the summed reward (TRL's reward_weights).")
    # A reward model instead of a function (issue 14): `{model: ID-or-folder, weight: 1.0}`.
    model: str | None = setting(None, help="A sequence-classification reward model (a cached hub id or a folder); "
                                      "its first logit for prompt + completion is the reward.")
    load_in_4bit: bool = setting(False, help="Load the reward model in 4-bit NF4 (CUDA only).")


@dataclass
class GRPOCoreSettings:
    num_generations: int = setting(8, range=(2, 256), help="Completions per prompt (the group). More = better "
                                                        "advantage estimates, more generation time and KV cache.")
    max_prompt_length: int = setting(256, range=(1, 1_000_000), help="Longest prompt in tokens.")
    max_completion_length: int = setting(256, range=(1, 1_000_000), help="Longest completion in tokens: "
                                                                     "drives activation and KV-cache memory.")
    temperature: float = setting(1.0, range=(0.01, 10.0), help="Sampling temperature for generation.")
    top_p: float = setting(1.0, range=(0.01, 1.0), help="Nucleus sampling cut-off.")
    # Sampling is set entirely by these fields (TRL's names): a model's own generation_config never adds to it.
    top_k: int = setting(0, range=(0, None), help="Sample from the k most likely tokens only (0 = off).")
    min_p: float = setting(0.0, range=(0.0, 1.0), help="Drop tokens less likely than min_p x the top token's "
                                                  "probability (0 = off).")
    repetition_penalty: float = setting(1.0, range=(0.01, 10.0), help="Divide the logits of tokens already in the "
                                                                 "prompt or completion by this (1 = off).")
    generation_backend: str = setting("auto", choices=GENERATION_BACKENDS, help="fast: shared prompt prefill, "
                                 "merged LoRA, lean decode loop (auto = fast); hf: Hugging Face generate.")
    generation_dtype: str = setting("auto", choices=DTYPES, help="Dtype for sampling (auto = bf16 where it is "
                               "faster, even when training is fp32; the loss recomputes log-probs).")
    beta: float = setting(0.0, range=(0.0, 10.0), help="KL penalty to the base model (0 = no reference pass).")
    epsilon_low: float = setting(0.2, range=(0.0, 1.0), help="Lower clip of the policy ratio (TRL's epsilon).")
    epsilon_high: float = setting(0.2, range=(0.0, 10.0), help="Upper clip of the policy ratio.")
    loss_type: str = setting("dapo", choices=LOSS_TYPES, help="How token losses are averaged.")
    scale_rewards: str = setting("group", choices=SCALE_REWARDS, help="Divide advantages by the std of the "
                                                                 "group, the batch, or not at all.")
    num_iterations: int = setting(1, range=(1, 16), help="Optimisation passes per generated batch (TRL's mu).")
    chunk_size: int | None = setting(None, range=(1, 1_000_000), help="Rows per chunk in the fused loss "
                                                                 "(None = automatic).")
    # Algorithm options (issue 14): TRL's names; dynamic sampling is DAPO's (TRL has no such knob).
    importance_sampling_level: str = setting("token", choices=IMPORTANCE_SAMPLING_LEVELS, help="Policy ratio per "
                                        "token (GRPO) or per completion (GSPO: exp of the mean log-ratio).")
    mask_truncated_completions: bool = setting(False, help="Leave completions cut at max_completion_length out "
                                                      "of the loss (they never reached an answer).")
    multi_objective_aggregation: str = setting("sum_then_normalize", choices=MULTI_OBJECTIVE_AGGREGATIONS,
                                          help="Weighted sum of the rewards, then group advantages; or each "
                                               "reward normalised in its group first, then summed.")
    dynamic_sampling: bool = setting(False, help="Drop groups whose rewards are all equal (no learning signal) "
                                            "and generate for fresh prompts instead (DAPO).")
    max_resample_times: int = setting(3, range=(0, 100), help="With dynamic_sampling: rounds of fresh prompts "
                                                         "per step before training on what is there.")


@dataclass
class OptimConfig:
    learning_rate: float = setting(5e-6, range=(0.0, 1.0), help="Peak learning rate.")
    lr_scheduler_type: str = setting("constant", choices=SCHEDULERS, help="Schedule after warmup.")
    warmup_steps: int = setting(0, range=(0, None), help="Linear warmup steps.")
    weight_decay: float = setting(0.0, range=(0.0, 1.0), help="AdamW weight decay.")
    max_grad_norm: float = setting(1.0, range=(0.0, None), help="Gradient clipping (0 = off).")
    optimizer: str = setting("adamw", choices=OPTIMIZERS, help="adamw_8bit keeps optimizer states in 8 bits.")
    adam_beta1: float = setting(0.9, range=(0.0, 0.999999))
    adam_beta2: float = setting(0.99, range=(0.0, 0.999999))


@dataclass
class BatchConfig:
    prompts_per_step: int = setting(4, range=(1, 4096), help="Prompts per optimizer step; each gets "
                                                         "num_generations completions.")
    micro_batch_size: int = setting(8, range=(1, 4096), help="Completions per forward/backward pass; the rest "
                                                         "is gradient accumulation. Lower = less memory.")
    generation_batch_size: int | None = setting(None, range=(1, 65536), help="Completions generated at once "
                                                                         "(None = all of a step).")


@dataclass
class GRPOSettings(LossOptionSettings, GRPOCoreSettings):
    """The `grpo:` section: the fields above first, then the loss options (loss_settings.py)."""


@dataclass
class TrainConfig:
    model: str = setting(DEMO, help="Hub id (from the local cache), local folder, a .gguf file, or 'demo'.")
    gguf_file: str | None = setting(None, help="A GGUF file inside `model` (a hub repo or a folder): trained "
                                               "from its weights, dequantized once into a cached folder.")
    load_in_4bit: bool = setting(False, help="Base weights in 4-bit NF4 (bitsandbytes): ~4x less weight memory.")
    dtype: str = setting("auto", choices=DTYPES, help="Compute dtype (auto = bf16 on GPUs that have it).")
    lora: LoraConfig = setting(factory=LoraConfig)
    dataset: DatasetConfig = setting(factory=DatasetConfig)
    system_prompt: str | None = setting(None, help="System prompt added to every question.")
    rewards: list[RewardSpec] = setting(factory=lambda: [RewardSpec("math_correct", 1.0)])
    grpo: GRPOSettings = setting(factory=GRPOSettings)
    optim: OptimConfig = setting(factory=OptimConfig)
    batch: BatchConfig = setting(factory=BatchConfig)
    max_steps: int | None = setting(200, range=(1, 10_000_000), help="Optimizer steps (None = from epochs).")
    num_train_epochs: float = setting(1.0, range=(0.0, 1000.0), help="Used when max_steps is None.")
    seed: int = setting(42, range=(0, 2**32 - 1))
    checkpoint_every: int = setting(50, range=(0, None), help="Save a checkpoint every N steps (0 = only at "
                                                         "the end).")
    checkpoint_keep: int = setting(3, range=(0, None), help="Keep the newest N checkpoints, delete older ones "
                                                       "(0 = keep all).")
    reward_timeout_s: float = setting(60.0, range=(0.1, 86400.0), help="Stop the run when one reward function "
                                                                  "call takes longer than this (seconds).")
    log_samples_every: int = setting(1, range=(0, None), help="Send one sample completion every N steps.")
    gradient_checkpointing: bool = setting(True, help="Recompute activations in backward: much less memory.")
    offload_activations: str = setting("auto", choices=OFFLOAD, help="Keep checkpointed activations in CPU "
                                                                "RAM (auto = on CUDA when they would "
                                                                "not fit).")
    device: str = setting("auto", choices=DEVICES)
    # data-parallel training (torchrun); the multi-node flags are the CLI's (`grpo-studio train --help`)
    gpus: int = setting(1, range=(1, 1024), help="GPUs of this machine to train on, one rank each (torchrun). "
                                            "batch.prompts_per_step must divide by the total number of GPUs.")
    # auto-fit (engine/common/fit.py): a new run's memory settings chosen for the GPU (or the CPU's free RAM)
    fit: str = setting("auto", choices=FIT_MODES, help="auto: before a new run loads, lower the micro-batch and "
                       "generation batch, turn on offloading or 4-bit as needed to fit the GPU; off: keep "
                       "these numbers as they are.")
    fit_may_reduce: str = setting("nothing", choices=FIT_MAY_REDUCE, help="What auto-fit may also lower when "
                                  "the memory settings are not enough (a shorter completion changes what is "
                                  "learned).")
    eval: EvalConfig = setting(factory=EvalConfig)

    @property
    def gradient_accumulation_steps(self) -> int:
        """Micro-batches per optimizer step (derived, so it can never disagree with the batch sizes)."""
        completions = self.batch.prompts_per_step * self.grpo.num_generations
        return max(1, -(-completions // self.batch.micro_batch_size))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# Reading and validation


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML file; raises ConfigError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", "pass the path of a config.yaml")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text (byte {exc.start})",
                          "save the config file as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:  # an empty file would otherwise silently train the demo
        raise ConfigError(f"{path} is empty", "write the run's settings into it (at least `model:` and "
                          "`dataset:`; the app's \"Save YAML…\" writes a complete one), or use --demo")
    return config_from_dict(data)


def config_from_dict(data: dict) -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping of field names to values")
    errors: list[FieldError] = []
    config = build_dataclass(TrainConfig, data, "", errors)
    if not errors:
        errors.extend(_cross_checks(config))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(map(str, errors)),
                          "fix the fields named above (see `grpo-studio train --help` and the README)", errors)
    return config


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(dump_config(config), encoding="utf-8")


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)


def field_help(cls: type = TrainConfig) -> dict[str, str]:
    """Dotted field path -> help text (for tooltips)."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update({f"{f.name}.{k}": v for k, v in field_help(hints[f.name]).items()})
        elif f.metadata.get("help"):
            out[f.name] = f.metadata["help"]
    return out


def get_path(data: dict, path: str) -> Any:
    """The value at a dotted path of a config dict: get_path(d, "grpo.beta") is d["grpo"]["beta"]."""
    for name in path.split("."):
        data = data[name]
    return data


def set_path(data: dict, path: str, value: Any) -> None:
    """Set the value at a dotted path of a config dict in place (the parents must exist)."""
    *parents, name = path.split(".")
    for parent in parents:
        data = data[parent]
    data[name] = value


def _cross_checks(config: TrainConfig) -> list[FieldError]:
    errors = []
    if not config.rewards:
        errors.append(FieldError("rewards", "at least one reward function is needed"))
    if config.max_steps is None and config.num_train_epochs <= 0:  # it would still train one step
        errors.append(FieldError("num_train_epochs", "must be above 0 when max_steps is null (0 trains nothing)"))
    if config.dataset.question_column is None and not config.dataset.prompt_column:
        errors.append(FieldError("dataset.prompt_column", "give a prompt column or a question column"))
    if config.lora.target_modules != "all-linear" and not (
            isinstance(config.lora.target_modules, list)
            and all(isinstance(m, str) for m in config.lora.target_modules) and config.lora.target_modules):
        errors.append(FieldError("lora.target_modules", "'all-linear' or a non-empty list of module names"))
    if config.offload_activations == "on" and not config.gradient_checkpointing:
        # What is offloaded are the layer inputs checkpointing saves; without it nothing would be, silently.
        errors.append(FieldError("offload_activations", "'on' needs gradient_checkpointing: true (offloading moves "
                                 "the layer inputs that checkpointing keeps to CPU RAM; without checkpointing there "
                                 "is nothing to offload): set gradient_checkpointing: true, or offload_activations: "
                                 "off"))
    errors.extend(loss_option_errors(config.grpo))
    errors += eval_problems(config.eval)
    return errors
