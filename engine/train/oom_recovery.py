"""Recovery from out-of-memory inside a step: free memory, halve the batch of the phase that ran out, and redo
the same step from its start with the same data and RNG state, so no step is lost or changed.

Generating in smaller slices samples the same completions (row_rng.py; on the fast backend, the default) and
a smaller micro-batch computes the same update (gradient accumulation), so a recovered run ends where a run
started with the smaller settings would, up to float rounding. At most MAX_RECOVERIES per run; each is a `log`
event (warning, with a `recovery` field) and goes into the run's config.yaml, so a resume keeps the smaller
settings. Out of recoveries, or where a redo could not be exact, the error goes on to oom.py's handling (the
`oom` error):
- the optimizer already stepped in this step (num_iterations > 1): the weights moved, a redo would differ;
- out of memory while scoring (a reward model) or loading: halving a batch does not help there;
- several ranks (torchrun): one rank cannot redo a step alone while the others wait in a collective.

GRPO_STUDIO_INJECT_OOM="PHASE@STEP[xN],..." raises torch.OutOfMemoryError inside that phase of that step
(N times), after the phase did real work: how the CPU test suite exercises all of this.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from grpo_studio.engine.checkpoints.checkpoint import capture_rng, restore_rng
from grpo_studio.engine.common.config import dump_config
from grpo_studio.engine.common.runs import atomic_write_text
from grpo_studio.engine.train import ranks
from grpo_studio.engine.train.oom import classify_oom, release_memory

MAX_RECOVERIES = 3
INJECT_ENV = "GRPO_STUDIO_INJECT_OOM"
# phase -> the batch setting that bounds its memory
HALVED = {"generating": "generation_batch_size", "optimizing": "micro_batch_size"}


class OomInjector:
    """Raises torch.OutOfMemoryError at chosen steps and phases: GRPO_STUDIO_INJECT_OOM is a comma-separated
    list of PHASE@STEP (once) or PHASE@STEPxN (N times), e.g. "generating@2,optimizing@3"."""

    def __init__(self, spec: str | None) -> None:
        self.remaining: dict[tuple[str, int], int] = {}
        for item in (spec or "").split(","):
            if item.strip():
                phase, step, times = _parse(item.strip())
                self.remaining[(phase, step)] = times

    @classmethod
    def from_env(cls) -> OomInjector:
        return cls(os.environ.get(INJECT_ENV))

    def __call__(self, step: int, phase: str) -> None:
        if self.remaining.get((phase, step), 0) > 0:
            self.remaining[(phase, step)] -= 1
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected by {INJECT_ENV} at step {step}, {phase})")


def _parse(item: str) -> tuple[str, int, int]:
    try:
        phase, rest = item.split("@")
        step, _, times = rest.partition("x")
        parsed = phase, int(step), int(times or 1)
    except ValueError:
        raise ValueError(f"{INJECT_ENV}: {item!r} is not PHASE@STEP or PHASE@STEPxN (e.g. generating@3, "
                         "optimizing@2x4)") from None
    if phase not in HALVED:
        raise ValueError(f"{INJECT_ENV}: phase must be one of {', '.join(HALVED)}, not {phase!r}")
    return parsed


class StepRecovery:
    """Runs a Trainer's steps with recovery; `run(step_fn)` returns what step_fn returns."""

    def __init__(self, trainer: Any, config_path: Any = None) -> None:
        self.trainer = trainer
        self.config_path = config_path  # the run's config.yaml, rewritten with the smaller settings
        self.recoveries = 0
        self.phase: str | None = None
        self.optimizer_stepped = False
        emit = trainer.emit

        def tracking_emit(kind: str, **fields: Any) -> Any:  # the phase that runs out names the batch to halve
            if kind == "phase":
                self.phase = fields.get("phase")
            return emit(kind, **fields)

        trainer.emit = tracking_emit
        self._hooked: Any = None

    def run(self, step_fn: Callable[[], Any]) -> Any:
        trainer = self.trainer
        self._hook_optimizer()
        data, rng = trainer.sampler.state_dict(), capture_rng()
        while True:
            self.optimizer_stepped = False
            try:
                return step_fn()
            except Exception as error:  # noqa: BLE001 - anything but a recoverable OOM is raised again
                change = self._smaller_batch(error)
                if change is None:
                    raise
                release_memory(error)
            trainer.optimizer.zero_grad(set_to_none=True)  # the failed attempt's partial gradients
            trainer.sampler.load_state_dict(data)
            restore_rng(rng)
            self._record(*change)

    def _hook_optimizer(self) -> None:
        if self._hooked is not self.trainer.optimizer:  # set up once the optimizer exists
            self.trainer.optimizer.register_step_pre_hook(self._stepping)
            self._hooked = self.trainer.optimizer

    def _stepping(self, *_args: Any) -> None:
        self.optimizer_stepped = True

    def _smaller_batch(self, error: BaseException) -> tuple[str, str, int, int] | None:
        """(phase, setting, old, new) when this error can be recovered from by halving, else None."""
        if classify_oom(error, self.phase) is None or self.recoveries >= MAX_RECOVERIES:
            return None
        if self.phase not in HALVED or self.optimizer_stepped or ranks.world_size() > 1:
            return None
        config = self.trainer.config
        rows = _rows_per_step(config)
        name = HALVED[self.phase]
        current = min(getattr(config.batch, name) or rows, rows)
        if current <= 1:
            return None
        return self.phase, name, current, current // 2

    def _record(self, phase: str, name: str, old: int, new: int) -> None:
        trainer = self.trainer
        self.recoveries += 1
        setattr(trainer.config.batch, name, new)
        if self.config_path is not None:
            atomic_write_text(self.config_path, dump_config(trainer.config))
        caveat = ""
        if name == "generation_batch_size" and trainer.config.grpo.generation_backend == "hf":
            caveat = "; the hf backend samples other (equally likely) completions in other slices"
        trainer.emit("log", level="warning",
                     message=f"out of memory while {phase} at step {trainer.step}: batch.{name} {old} -> {new}, "
                             f"redoing step {trainer.step} from its start (recovery {self.recoveries} of "
                             f"{MAX_RECOVERIES}; config.yaml keeps the smaller setting{caveat})",
                     recovery={"phase": phase, "setting": f"batch.{name}", "old": old, "new": new,
                               "attempt": self.recoveries, "step": trainer.step})


def _rows_per_step(config: Any) -> int:
    """Completions this process generates and trains on per step."""
    prompts = max(1, config.batch.prompts_per_step // max(1, ranks.world_size()))
    return prompts * config.grpo.num_generations
