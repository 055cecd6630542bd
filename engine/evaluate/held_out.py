"""Held-out evaluation: how well the model answers prompts it never trained on, the way a user judges it.

A fixed sample of `eval.num_prompts` held-out prompts (the same sample for every run and seed, so runs
compare) is answered through the training rollout path (`rollout.generate`, batched, adapter on; greedy by
default) and scored with the run's reward functions. The Trainer evaluates before the first update (step 0:
the adapter starts at zero, so that is the base model), every `eval.every` steps and after the last step;
`grpo-studio eval` does the same for a finished run or a checkpoint.

Evaluation never touches training's random state: the Python, NumPy and torch generators are saved before
and restored after (sampled evaluation draws from its own seed), so a run with evaluation trains exactly
as one without, and a resumed run still equals an uninterrupted one.

`accuracy` is the share of held-out prompts whose correctness reward is full (scores 1 or more). The
correctness reward is `math_correct` when the run uses it, else the run's first reward function; prompts
it does not score (None: no reference answer) are left out of the share.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.errors import DataError
from grpo_studio.engine.common.text import clip
from grpo_studio.engine.rewards.scoring import RewardFunction, score_completions
from grpo_studio.engine.rollout.generation import generate
from grpo_studio.engine.rollout.sampling import SamplingParams

Emit = Callable[..., Any]
SAMPLE_SEED = 20231  # the held-out sample's own seed: every run and seed evaluates the same prompts
CORRECTNESS_REWARD = "math_correct"
EXAMPLES_SHOWN = 3  # answers carried in each eval event, for the Monitor and the log


def correctness_function(functions: list[RewardFunction]) -> RewardFunction | None:
    """The reward that decides `accuracy`: math_correct when the run uses it, else the first one."""
    for rf in functions:
        if rf.name == CORRECTNESS_REWARD:
            return rf
    return functions[0] if functions else None


def eval_dataset_config(config: TrainConfig) -> TrainConfig:
    """The run's config with `dataset` pointing at the held-out data (same columns, prompts, template)."""
    spec = config.eval
    path = spec.path or config.dataset.path
    split = spec.split or ("train" if spec.path and Path(spec.path).expanduser().is_file() else "test")
    return dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, path=path, split=split))


def load_eval_examples(config: TrainConfig, tokenizer, training: list | None = None) -> tuple[list, list[str]]:
    """(the held-out sample of Examples, notes for the log). `training`: the training examples, to warn
    when held-out prompts are also training prompts."""
    from grpo_studio.engine.data.dataset import load_examples

    view = eval_dataset_config(config)
    try:
        examples, report = load_examples(view, tokenizer)
    except DataError as error:
        raise DataError(f"held-out data (eval): {error.message}",
                        error.hint + "; or fix eval.path / eval.split") from error
    k = min(config.eval.num_prompts, len(examples))
    chosen = [examples[i] for i in random.Random(SAMPLE_SEED).sample(range(len(examples)), k)]
    notes = [f"held-out evaluation: {k} of {report.num_examples} prompts from {report.source} "
             f"(split '{view.dataset.split}')"]
    if k < config.eval.num_prompts:
        notes.append(f"eval.num_prompts is {config.eval.num_prompts} but the held-out data has {k} prompts")
    if training:
        seen = {e.prompt_text for e in training}
        shared = sum(1 for e in chosen if e.prompt_text in seen)
        if shared:
            notes.append(f"{shared} of the {k} held-out prompts are also training prompts, so the evaluation "
                         "partly measures memorisation: point eval.path at separate data, or split the file "
                         "(dataset.split 'train[:90%]', eval.split 'train[90%:]')")
    return chosen, notes


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block on its own random streams, seeded with `seed`; every generator is as before afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def _question(prompt: Any) -> str:
    """What the user asked: a text prompt as is, a conversation's last user message."""
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else str(prompt[-1].get("content", ""))
    return str(prompt)


def _mean(values: list) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


class Evaluator:
    """The run's held-out prompts and reward functions; `evaluate` answers and scores them."""

    def __init__(self, config: TrainConfig, tokenizer, examples: list, functions: list[RewardFunction],
                 emit: Emit) -> None:
        self.config, self.tokenizer, self.examples, self.functions, self.emit = (
            config, tokenizer, examples, functions, emit)

    def due(self, step: int, total_steps: int) -> bool:
        """After this training step: every `eval.every` steps, and after the last one."""
        every = self.config.eval.every
        return step == total_steps or bool(every and step % every == 0)

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, step: int | None, device: torch.device | None = None,
                 **extra: Any) -> dict:
        """Answer and score the held-out prompts; emits and returns the `eval` event's fields."""
        config, grpo = self.config, self.config.grpo
        self.emit("phase", phase="evaluating", step=step)
        sampling = (SamplingParams(greedy=True, repetition_penalty=grpo.repetition_penalty) if config.eval.greedy
                    else SamplingParams.from_grpo(grpo))
        with isolated_rng(config.seed + (step or 0)):  # step None: an adapter from outside a run
            rollout = generate(model, self.tokenizer, [e.prompt_ids for e in self.examples], num_generations=1,
                               max_completion_length=grpo.max_completion_length, sampling=sampling,
                               backend=grpo.generation_backend, generation_dtype=grpo.generation_dtype,
                               batch_size=config.batch.generation_batch_size, device=device)
        lengths = rollout.completion_mask.sum(1)
        ids = [row[:n].tolist() for row, n in zip(rollout.completion_ids, lengths)]
        scores = score_completions(self.functions, [e.prompt for e in self.examples], rollout.texts, ids,
                                   [e.columns for e in self.examples])
        judge = correctness_function(self.functions)
        judged = [v for v in scores.per_function[judge.name] if v is not None] if judge else []
        correct: list[bool | None] = []
        if judge:
            correct = [v is not None and v >= 1.0 for v in scores.per_function[judge.name]]
        fields = {
            "step": step,
            "reward": _mean(scores.total),
            "accuracy": sum(v >= 1.0 for v in judged) / len(judged) if judged else None,
            "accuracy_reward": judge.name if judge else None,
            "rewards": {name: _mean(values) for name, values in scores.per_function.items()},
            "num_prompts": len(self.examples),
            "completion_length": float(lengths.float().mean()),
            "truncated": float(rollout.truncated.float().mean()) if rollout.truncated is not None else None,
            "greedy": config.eval.greedy,
            "examples": [{"prompt": clip(_question(e.prompt), 200), "completion": clip(text, 300),
                          "reward": total, "correct": ok}
                         for e, text, total, ok in zip(self.examples, rollout.texts, scores.total,
                                                       correct or [None] * len(self.examples))][:EXAMPLES_SHOWN],
            **extra,
        }
        self.emit("eval", **fields)
        return fields


def build_evaluator(config: TrainConfig, tokenizer, functions: list[RewardFunction], emit: Emit,
                    training: list | None = None) -> Evaluator | None:
    """The run's Evaluator (None when `eval:` is off), its notes logged."""
    if not config.eval.enabled:
        return None
    examples, notes = load_eval_examples(config, tokenizer, training)
    for note in notes:
        emit("log", level="warning" if "also training prompts" in note or "but the held-out" in note
             else "info", message=note)
    return Evaluator(config, tokenizer, examples, functions, emit)
