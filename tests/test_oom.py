"""Running out of memory (simulated on the CPU): an `error` event of kind oom whose hint names the setting to
lower, the last completed step checkpointed (exactly, so a resume ends bit-identical), never a half-step;
Triton's OutOfResources and non-allocator failures are OOMs too, not crashes."""
import pytest
import torch

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.train import loop
from grpo_studio.engine.common.errors import EXIT_CODES
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.train.oom import classify_oom
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from test_checkpoint_resume import adapter_weights, small_config


def fail_on_call(monkeypatch, owner, name, call, error, times=1):
    """Make owner.name raise `error` on its `call`-th call (1-based) and the `times - 1` calls after it, after
    running the original before it. (An OOM while generating or optimizing is first recovered from three
    times by halving the batch, oom_recovery.py: four failures in a row end the run.)"""
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if call <= calls[0] < call + times:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def events_of(run):
    return list(read_events(RunPaths(run).events))


@pytest.mark.slow  # three short engine runs
def test_oom_while_generating_keeps_the_last_completed_step_exactly(tmp_path, monkeypatch):
    straight, failed = tmp_path / "straight", tmp_path / "failed"
    assert run_engine(small_config(steps=4), straight, quiet=True) == 0
    with monkeypatch.context() as patch:
        fail_on_call(patch, loop, "generate", 3, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                     times=4)
        assert run_engine(small_config(steps=4), failed, quiet=True) == EXIT_CODES["oom"]
    events = events_of(failed)
    [error] = [e for e in events if e["type"] == "error"]
    assert error["kind"] == "oom" and "at step 3" in error["message"]
    assert "batch.generation_batch_size" in error["hint"]  # the setting to lower while generating
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "failed"
    assert read_status(RunPaths(failed))["state"] == "failed"
    assert ckpt.latest_checkpoint(RunPaths(failed).checkpoints).name == "step-2"
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2]

    assert run_engine(small_config(steps=4), failed, resume=True, quiet=True) == 0
    a, b = adapter_weights(straight), adapter_weights(failed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # data position and RNG were exact


def test_oom_after_the_optimizer_stepped_writes_no_half_step(tmp_path, monkeypatch):
    config = small_config(steps=4)
    config.grpo.num_iterations = 2  # two optimizer updates per step: fail in the second one of step 2
    config.checkpoint_every = 1
    run = tmp_path / "run"
    fail_on_call(monkeypatch, loop.Trainer, "_update", 4, torch.OutOfMemoryError("CUDA out of memory."))
    assert run_engine(config, run, quiet=True) == EXIT_CODES["oom"]
    events = events_of(run)
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [1]
    assert any(e["type"] == "log" and "already updated the weights" in e["message"] for e in events)
    [error] = [e for e in events if e["type"] == "error"]
    assert "batch.micro_batch_size" in error["hint"]  # the setting to lower while optimizing


def test_triton_out_of_resources_is_an_oom_with_a_hint(tmp_path, monkeypatch):
    from triton.runtime.errors import OutOfResources

    run = tmp_path / "run"
    fail_on_call(monkeypatch, loop, "micro_batch_loss", 1, OutOfResources(147456, 101376, "shared memory"), times=4)
    assert run_engine(small_config(steps=2), run, quiet=True) == EXIT_CODES["oom"]
    [error] = [e for e in events_of(run) if e["type"] == "error"]
    assert error["kind"] == "oom" and "shared memory" in error["message"]
    assert "dtype" in error["hint"] and "GRPO_STUDIO_NO_TRITON=1" in error["hint"]


@pytest.mark.parametrize("error, kind", [
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), "gpu"),
    (RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"), "gpu"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), "gpu"),
    (RuntimeError("CachingHostAllocator: cudaHostAlloc failed: out of memory"), "pinned"),
    (RuntimeError("shape mismatch"), None),
    (ValueError("out of memory"), None),
])
def test_what_counts_as_out_of_memory(error, kind):
    found = classify_oom(error, "optimizing")
    if kind is None:
        assert found is None
    elif kind == "pinned":
        assert "pinned" in found.message and "offload_activations" in found.hint
    else:
        assert "GPU memory" in found.message and "batch.micro_batch_size" in found.hint
