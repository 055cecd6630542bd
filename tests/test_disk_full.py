"""A full disk (issue 16, case 3): on a real small tmpfs, filled up while the demo trains, the run ends with an
`error` event of kind disk_full that names the folder and the free space, status.json says failed, and the
last good checkpoint is intact. ENOSPC from other writers (export) is injected. Checkpoints are pruned to
the newest `checkpoint_keep`."""
import errno
import json

import pytest

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.cli import main
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.disk import DiskFullError, as_disk_full, is_disk_full
from grpo_studio.engine.common.events import EventLog, read_events
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from mounts import fill, tmpfs

EXIT_DISK_FULL = 9


class AtStep(Control):
    """Runs `action` once, when the loop asks whether to stop after `step` steps are on record."""

    def __init__(self, run_dir, step, action):
        super().__init__()
        self.events, self.step, self.action, self.done = RunPaths(run_dir).events, step, action, False

    @property
    def stop_requested(self):
        if not self.done and any(e["type"] == "progress" and e["step"] >= self.step
                                 for e in read_events(self.events)):
            self.done = True
            self.action()
        return super().stop_requested


def small_config(steps=6, every=2):
    config = demo_config(steps=steps)
    config.batch.prompts_per_step = 4
    config.checkpoint_every = every
    config.log_samples_every = 1
    return config


def check_failed_with_disk_full(run_dir, code):
    assert code == EXIT_DISK_FULL
    events = list(read_events(RunPaths(run_dir).events))
    errors = [e for e in events if e["type"] == "error"]
    assert errors and errors[-1]["kind"] == "disk_full", errors
    assert str(run_dir) in errors[-1]["message"] and "free" in errors[-1]["message"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "failed"
    assert read_status(RunPaths(run_dir))["state"] == "failed"
    assert [e["seq"] for e in events] == list(range(len(events)))  # no torn or lost line before the error
    return errors[-1]


def check_intact(run_dir, step):
    found = ckpt.complete_checkpoints(RunPaths(run_dir).checkpoints)
    assert found and found[-1][0] == step
    weights, state = ckpt.read_checkpoint(found[-1][1])  # reads back whole
    assert state["step"] == step and weights
    assert not list(RunPaths(run_dir).checkpoints.glob(".tmp-step-*"))  # the failed save left nothing


def test_disk_full_while_writing_events(tmp_path):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        run = disk / "run"
        code = run_engine(small_config(), run, control=AtStep(run, 3, lambda: fill(disk)), quiet=True)
        check_failed_with_disk_full(run, code)
        check_intact(run, 2)
        assert not (run / ".space-reserve").exists()


def test_disk_full_while_writing_a_checkpoint(tmp_path):
    with tmpfs(tmp_path / "disk", "8m") as disk:
        run = disk / "run"
        # room for step 4's events, not for its checkpoint (~600 KB)
        code = run_engine(small_config(), run, control=AtStep(run, 3, lambda: fill(disk, leave=96 << 10)),
                          quiet=True)
        error = check_failed_with_disk_full(run, code)
        assert "checkpoint step-4" in error["message"]
        check_intact(run, 2)


def test_disk_full_at_the_start_is_reported_without_a_traceback(tmp_path, capsys):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        run = disk / "run"
        run.mkdir()
        fill(disk)
        code = run_engine(small_config(), run, quiet=True)
    assert code == EXIT_DISK_FULL
    err = capsys.readouterr().err
    assert "disk_full" in err and "Traceback" not in err


def test_event_log_cuts_a_torn_line_and_raises_disk_full(tmp_path):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        log = EventLog(disk / "events.jsonl")
        log.emit("log", level="info", message="before")
        fill(disk, leave=100)
        with pytest.raises(DiskFullError) as info:
            log.emit("log", level="info", message="x" * 20_000)
        assert str(disk) in info.value.message
        log.close()
        lines = (disk / "events.jsonl").read_bytes().splitlines(keepends=True)
        assert len(lines) == 1 and lines[0].endswith(b"\n")  # the half-written event was cut back


def test_disk_full_is_recognised_however_a_library_reports_it(tmp_path):
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"))
    wrapped = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert not is_disk_full(wrapped, tmp_path)  # plenty of space here: a real error, not a full disk
    assert not is_disk_full(ValueError("bad value"))
    assert as_disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path) is None


def test_checkpoints_are_pruned_to_checkpoint_keep(tmp_path):
    config = small_config(steps=5, every=1)
    config.checkpoint_keep = 2
    assert run_engine(config, tmp_path / "a", quiet=True) == 0
    assert [s for s, _ in ckpt.complete_checkpoints(tmp_path / "a" / "checkpoints")] == [4, 5]
    config.checkpoint_keep = 0  # keep all
    assert run_engine(config, tmp_path / "b", quiet=True) == 0
    assert [s for s, _ in ckpt.complete_checkpoints(tmp_path / "b" / "checkpoints")] == [1, 2, 3, 4, 5]


def test_export_onto_a_full_disk_is_a_disk_full_error(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert run_engine(small_config(steps=1, every=0), run, quiet=True) == 0
    import grpo_studio.engine.export.gguf_adapter as export_gguf

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "a.gguf"))

    monkeypatch.setattr(export_gguf, "_write", full)
    code = main(["export", str(run), "--gguf", str(tmp_path / "out" / "a.gguf"), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == EXIT_DISK_FULL
    assert lines[-1]["type"] == "error" and lines[-1]["kind"] == "disk_full"
    assert str(tmp_path / "out") in lines[-1]["message"]


def test_disk_full_while_saving_the_final_adapter(tmp_path, monkeypatch):
    from grpo_studio.engine.train.loop import Trainer

    def full(self):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(Trainer, "save_adapter", full)  # safetensors' own wording for ENOSPC
    run = tmp_path / "run"
    check_failed_with_disk_full(run, run_engine(small_config(steps=2), run, quiet=True))
    check_intact(run, 2)
