"""The `eval:` section of a run's config: held-out evaluation (issue 23). Torch-free.

    eval: {path: data/test.jsonl, num_prompts: 64, every: 10, greedy: true}
    eval: {split: "train[90%:]"}          # a slice of the training file (dataset.split: "train[:90%]")

Evaluation is on when `path` or `split` is set. The held-out prompts are rendered like the training ones
(same columns, system prompt and chat template) and scored with the run's reward functions.
"""
from __future__ import annotations

from dataclasses import dataclass

from grpo_studio.engine.common.config_fields import setting
from grpo_studio.engine.common.errors import FieldError


@dataclass
class EvalConfig:
    path: str | None = setting(None, help="Held-out data: a file, folder or cached hub id with the training "
                                      "data's columns (empty = the training dataset, with eval.split).")
    split: str | None = setting(None, help="Split to evaluate on, e.g. 'test' or 'train[90%:]'. Setting path "
                                       "or split turns held-out evaluation on.")
    num_prompts: int = setting(64, range=(1, 100_000), help="Held-out prompts per evaluation: a fixed sample, "
                                                         "the same for every run and seed.")
    every: int = setting(0, range=(0, None), help="Evaluate every N steps, besides before training and at "
                                              "the end (0 = only those two).")
    greedy: bool = setting(True, help="Greedy answers, the model's best guess as a user sees it (false: "
                                  "sample with the run's temperature).")

    @property
    def enabled(self) -> bool:
        return bool(self.path or self.split)


def eval_problems(spec: EvalConfig) -> list[FieldError]:
    """What is inconsistent in the eval section (each field's own range is checked with the rest)."""
    if spec.every and not spec.enabled:
        return [FieldError("eval.every", "held-out evaluation is off; set eval.path (a held-out file) or "
                           "eval.split (e.g. 'test') to turn it on")]
    if spec.path is not None and not spec.path.strip():
        return [FieldError("eval.path", "empty; give a held-out data file, or leave the field out")]
    return []
