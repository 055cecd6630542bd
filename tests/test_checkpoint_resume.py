"""Checkpoints: a stopped-and-resumed run ends bit-identical to an uninterrupted one; a half-written
checkpoint never counts."""
import pytest
import torch
from safetensors.torch import load_file

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths
from test_loop import StopAfter


def adapter_weights(run_dir):
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def small_config(steps=6):
    config = demo_config(steps=steps)
    config.batch.prompts_per_step = 4  # fast; still several micro-batches below
    config.batch.micro_batch_size = 12
    config.checkpoint_every = 0
    config.log_samples_every = 0
    return config


def test_resumed_run_ends_with_exactly_the_same_adapter(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert run_engine(small_config(), straight, quiet=True) == 0
    assert run_engine(small_config(), interrupted, control=StopAfter(interrupted, 3), quiet=True) == 0
    assert ckpt.latest_checkpoint(RunPaths(interrupted).checkpoints).name == "step-3"
    assert run_engine(small_config(), interrupted, resume=True, quiet=True) == 0

    a, b = adapter_weights(straight), adapter_weights(interrupted)
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the adapter really trained (equality of two untouched adapters would prove nothing)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    events = list(read_events(RunPaths(interrupted).events))
    assert [e["reason"] for e in events if e["type"] == "done"] == ["stopped", "finished"]
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps == [1, 2, 3, 4, 5, 6]
    straight_rewards = [e["reward"] for e in read_events(RunPaths(straight).events) if e["type"] == "metrics"]
    assert [e["reward"] for e in events if e["type"] == "metrics"] == straight_rewards


def test_resume_without_checkpoint_starts_from_zero(tmp_path):
    run = tmp_path / "run"
    RunPaths(run).root.mkdir()
    assert run_engine(small_config(steps=2), run, resume=True, quiet=True) == 0
    events = list(read_events(RunPaths(run).events))
    assert any(e["type"] == "log" and "no complete checkpoint" in e["message"] for e in events)
    assert [e["step"] for e in events if e["type"] == "metrics"] == [1, 2]


class _Model:
    def save_pretrained(self, folder):
        from pathlib import Path

        Path(folder).mkdir(parents=True)
        (Path(folder) / "adapter_model.safetensors").write_bytes(b"x")


def _optimizer():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p])
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def test_partial_checkpoints_never_count(tmp_path):
    folder = tmp_path / "checkpoints"
    opt, sched = _optimizer()
    ckpt.save_checkpoint(folder, 3, _Model(), opt, sched, {"epoch": 0, "index": 0})
    (folder / ".tmp-step-5-abc").mkdir()  # a save that died before its rename
    (folder / ".tmp-step-5-abc" / ckpt.STATE_FILE).write_bytes(b"")
    (folder / "step-7").mkdir()  # a folder without its completion marker
    assert ckpt.latest_checkpoint(folder).name == "step-3"
    ckpt.remove_partial(folder)
    assert not (folder / ".tmp-step-5-abc").exists()


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    opt, sched = _optimizer()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(folder, 4, _Model(), opt, sched, {})
    assert list(folder.iterdir()) == []
    assert ckpt.latest_checkpoint(folder) is None


def test_rng_states_round_trip():
    import random

    import numpy as np

    state = ckpt.capture_rng()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    ckpt.restore_rng(state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
