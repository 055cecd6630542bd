"""Out of memory: which failures count as one, the hint naming the setting to lower, and the checkpoint of the
last completed step, kept before the engine exits.

Besides torch's allocator (`torch.OutOfMemoryError`), a GPU runs out in ways that arrive as other errors: a
Triton kernel that needs more shared memory or registers than the GPU has (`OutOfResources`), cuBLAS failing
to allocate its workspace, a raw CUDA allocation, pinned host memory for offloading. All end as an `error`
event of kind `oom`, never as a crash.

`LastCompletedStep` remembers where the last completed step left the run (step, data position, RNG) and
watches the optimizer: when an OOM hits before the step in progress touched the weights, the checkpoint it
writes is exactly the one an uninterrupted run would have written after that step; once the optimizer has
stepped (a half-done step), nothing is written and the last checkpoint on disk is what a resume uses.
"""
from __future__ import annotations

import gc
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grpo_studio.engine.checkpoints.checkpoint import capture_rng, restore_rng

GENERAL_HINT = ("lower batch.micro_batch_size, grpo.max_completion_length or grpo.num_generations, turn on "
                "load_in_4bit and offload_activations, or run `grpo-studio estimate` to see what fits")
# The setting to lower first, by the phase the run was in when memory ran out.
PHASE_HINTS = {
    "generating": "lower batch.generation_batch_size (completions generated at once; e.g. halve it), or "
                  "grpo.max_completion_length",
    "optimizing": "lower batch.micro_batch_size (e.g. halve it), or set offload_activations: on; then "
                  "grpo.max_completion_length",
    "loading_model": "set load_in_4bit: true, or choose a smaller model",
    "evaluating": "set batch.generation_batch_size (held-out answers generated at once; all eval.num_prompts "
                  "by default), or lower eval.num_prompts",
}
TRITON_HINT = ("the fused loss kernel does not fit this GPU's {name}: set dtype: auto (bf16/fp16 tiles need "
               "half the shared memory of float32), or set the environment variable GRPO_STUDIO_NO_TRITON=1 "
               "to use the chunked torch path")
PINNED_HINT = "set offload_activations: off (offloading pins CPU RAM), or free CPU memory"
# Messages of non-allocator GPU allocation failures (cuBLAS handles and workspaces, raw CUDA calls).
_DEVICE_OOM_TEXT = ("CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory", "cudaErrorMemoryAllocation",
                    "CUDNN_STATUS_ALLOC_FAILED", "CUDA_ERROR_OUT_OF_MEMORY")
_PINNED_TEXT = ("cudaHostAlloc", "pinned memory", "CachingHostAllocator")


@dataclass(frozen=True)
class OomFailure:
    message: str
    hint: str


def classify_oom(error: BaseException, phase: str | None = None) -> OomFailure | None:
    """An OomFailure when `error` means the GPU (or pinned host memory) ran out, else None."""
    text = str(error)
    first_line = text.splitlines()[0] if text else type(error).__name__
    hint = PHASE_HINTS.get(phase or "", GENERAL_HINT)
    if _is_triton_out_of_resources(error):
        name = getattr(error, "name", "shared memory")
        return OomFailure(f"the GPU is out of {name} for a Triton kernel: {first_line}",
                          TRITON_HINT.format(name=name))
    if isinstance(error, torch.OutOfMemoryError):
        if any(marker in text for marker in _PINNED_TEXT):
            return OomFailure(f"out of pinned CPU memory: {first_line}", PINNED_HINT)
        return OomFailure(f"out of GPU memory: {first_line}", hint)
    if isinstance(error, RuntimeError):
        if any(marker in text for marker in _PINNED_TEXT) and "memory" in text.lower():
            return OomFailure(f"out of pinned CPU memory: {first_line}", PINNED_HINT)
        if any(marker in text for marker in _DEVICE_OOM_TEXT):
            return OomFailure(f"out of GPU memory outside torch's allocator: {first_line}", hint)
    return None


def _is_triton_out_of_resources(error: BaseException) -> bool:
    try:
        from triton.runtime.errors import OutOfResources
    except ImportError:  # no Triton: no Triton kernel either
        return False
    return isinstance(error, OutOfResources)


def release_memory(error: BaseException) -> None:
    """Drop what the failed step still holds: the traceback's frames keep its tensors alive."""
    traceback.clear_frames(error.__traceback__)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class LastCompletedStep:
    """Where the last completed step left a Trainer, and whether the step in progress changed the weights."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.weights_changed = False
        self.mark()
        trainer.optimizer.register_step_pre_hook(self._optimizer_stepping)

    def _optimizer_stepping(self, *_args: Any) -> None:
        self.weights_changed = True

    def mark(self) -> None:
        """Call after each completed step (and once after setup or resume)."""
        self.step = self.trainer.step
        self.data = self.trainer.sampler.state_dict()
        self.rng = capture_rng()
        self.weights_changed = False

    def save_after_oom(self) -> tuple[Path | None, str]:
        """Checkpoint the last completed step unless it is already saved or the weights moved since;
        returns (path or None, a sentence for the log)."""
        trainer = self.trainer
        if self.weights_changed:
            return None, (f"step {self.step + 1} had already updated the weights when memory ran out, so no "
                          "checkpoint was written; a resume starts from the last checkpoint on disk")
        if self.step == 0:
            return None, "no step had completed yet: nothing to checkpoint"
        if self.step == trainer.last_saved_step:
            return None, f"the last completed step ({self.step}) is already checkpointed"
        trainer.optimizer.zero_grad(set_to_none=True)  # the failed step's partial gradients
        trainer.step = self.step
        trainer.sampler.load_state_dict(self.data)
        restore_rng(self.rng)
        path = trainer.save_checkpoint()
        return path, f"checkpointed the last completed step ({self.step}) before exiting: resume continues there"
