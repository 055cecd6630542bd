"""Nothing in a run folder is lost (issue 16, cases 1, 2, 4 and 16): a new run never lands on an earlier
one or on foreign files, a deleted events.jsonl is recreated, a damaged newest checkpoint falls back to an
older one, and everything the engine writes is private (0700 folders, 0600 files)."""
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.cli import main
from grpo_studio.engine.common.config import save_config
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import EventLog, read_events
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, new_run_dir
from test_disk_full import AtStep

EXIT_CONFIG = 2


def tiny(steps=2, every=1):
    config = demo_config(steps=steps)
    config.batch.prompts_per_step = 4
    config.checkpoint_every = every
    return config


def train(*args):
    return main(["train", *map(str, args), "--quiet"])


# ------------------------------------------------------------------------------------- case 1: overwrite
def test_a_new_run_refuses_a_folder_holding_an_earlier_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert train("--demo", "--steps", 1, "--run-dir", run) == 0
    adapter = (run / "adapter" / "adapter_model.safetensors").read_bytes()
    events = (run / "events.jsonl").read_bytes()
    capsys.readouterr()
    assert train("--demo", "--steps", 1, "--run-dir", run) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "not empty" in err and "earlier run" in err and "--resume" in err and "--overwrite" in err
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() == adapter  # untouched
    assert (run / "events.jsonl").read_bytes() == events


def test_overwrite_replaces_the_run_but_keeps_files_studio_did_not_write(tmp_path):
    run = tmp_path / "run"
    assert train("--demo", "--steps", 2, "--run-dir", run) == 0
    (run / "notes.txt").write_text("mine")
    assert train("--demo", "--steps", 1, "--run-dir", run, "--overwrite") == 0
    assert (run / "notes.txt").read_text() == "mine"
    events = list(read_events(RunPaths(run).events))
    assert [e["type"] for e in events].count("hello") == 1  # old and new events never mix
    assert [s for s, _ in ckpt.complete_checkpoints(RunPaths(run).checkpoints)] == [1]
    assert any("--overwrite: removed" in e.get("message", "") for e in events)


def test_run_dir_dot_with_foreign_files_is_refused_and_nothing_is_deleted(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"prompt": "1+1", "answer": "2"}\n')
    (tmp_path / "config.yaml").write_text("# my own commented config\nmodel: demo\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert train("--demo", "--steps", 1, "--run-dir", ".") == EXIT_CONFIG
    assert "not empty" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # --overwrite never replaces the user's own config.yaml (the engine writes one), so this stays refused
    assert train("--demo", "--steps", 1, "--run-dir", ".", "--overwrite") == EXIT_CONFIG
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # without it, --overwrite trains beside the user's data and deletes none of it
    (tmp_path / "config.yaml").unlink()
    assert train("--demo", "--steps", 1, "--run-dir", ".", "--overwrite") == 0
    assert (tmp_path / "data.jsonl").read_bytes() == before["data.jsonl"]


def test_a_fresh_folder_prepared_by_the_app_is_accepted(tmp_path, runs_dir):
    run = new_run_dir("demo", runs_dir)  # what the app does: folder, config.yaml, then the engine
    config = tiny(steps=1)
    save_config(config, run / "config.yaml")
    (run / "engine.log").write_text("=== started\n")  # the launcher writes this before the engine runs
    assert train(run / "config.yaml", "--run-dir", run) == 0
    assert (run / "adapter").is_dir()


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    assert train("--demo", "--run-dir", tmp_path / "run", "--resume", "--overwrite") == EXIT_CONFIG


# ------------------------------------------------------------------------ case 2: events.jsonl deleted
def test_event_log_recreates_a_deleted_file_and_continues_the_numbering(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    for _ in range(3):
        log.emit("log", level="info", message="a")
    (tmp_path / "events.jsonl").unlink()
    log.emit("log", level="info", message="b")
    log.close()
    events = list(read_events(tmp_path / "events.jsonl"))
    assert [e["seq"] for e in events] == [3, 4]
    assert events[1]["level"] == "warning" and "recreated" in events[1]["message"]


def test_deleting_events_jsonl_during_a_run_loses_only_what_was_deleted(tmp_path):
    run = tmp_path / "run"
    config = tiny(steps=4, every=0)
    assert run_engine(config, run, control=AtStep(run, 2, lambda: RunPaths(run).events.unlink()), quiet=True) == 0
    events = list(read_events(RunPaths(run).events))
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 0  # continues, no gap after
    assert any(e["type"] == "progress" and e["step"] == 4 for e in events)
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "finished"


# ------------------------------------------------------------------- case 4: damaged newest checkpoint
@pytest.mark.parametrize("damage", ["state", "adapter"])
def test_resume_falls_back_from_a_damaged_newest_checkpoint(tmp_path, damage):
    run = tmp_path / "run"
    assert run_engine(tiny(steps=3, every=1), run, quiet=True) == 0
    newest = RunPaths(run).checkpoints / "step-3"
    target = newest / ("trainer_state.pt" if damage == "state" else "adapter/adapter_model.safetensors")
    target.write_bytes(target.read_bytes()[:100])  # truncated
    assert run_engine(tiny(steps=4, every=1), run, resume=True, quiet=True) == 0
    events = list(read_events(RunPaths(run).events))
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any("skipping checkpoint step-3" in m and "damaged" in m and target.name in m for m in logs)
    assert "resumed from step-2" in logs
    progress = [e["step"] for e in events if e["type"] == "progress"]
    assert progress[-2:] == [3, 4]  # step 3 trained again, from step-2's state


def test_resume_with_every_checkpoint_damaged_says_so(tmp_path):
    run = tmp_path / "run"
    assert run_engine(tiny(steps=1, every=1), run, quiet=True) == 0
    (RunPaths(run).checkpoints / "step-1" / "trainer_state.pt").write_bytes(b"garbage")
    assert run_engine(tiny(steps=2, every=1), run, resume=True, quiet=True) != 0
    error = [e for e in read_events(RunPaths(run).events) if e["type"] == "error"][-1]
    assert "every checkpoint" in error["message"] and "damaged" in error["message"]
    assert "Traceback" not in error["message"]


def test_a_zero_byte_checkpoint_hint_never_proposes_deleting_the_intact_adapter(tmp_path):
    """Issue 27 finding 4: --overwrite would delete the run's intact final adapter; the hint keeps it."""
    run = tmp_path / "run"
    assert run_engine(tiny(steps=1, every=1), run, quiet=True) == 0
    (RunPaths(run).checkpoints / "step-1" / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    assert run_engine(tiny(steps=2, every=1), run, resume=True, quiet=True) != 0
    error = [e for e in read_events(RunPaths(run).events) if e["type"] == "error"][-1]
    assert "--overwrite" not in error["hint"] and "--run-dir NEW_FOLDER" in error["hint"]
    assert "final adapter" in error["hint"] and "intact" in error["hint"]
    assert (RunPaths(run).adapter / "adapter_model.safetensors").stat().st_size > 0


def test_read_checkpoint_leaves_the_model_untouched_when_damaged(tmp_path):
    model = torch.nn.Linear(2, 2)
    before = model.weight.detach().clone()
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(ckpt.DamagedCheckpoint, match="adapter_model.safetensors is damaged"):
        ckpt.read_checkpoint(tmp_path)
    assert torch.equal(model.weight, before)


# -------------------------------------------------------------------------- case 16: private run files
def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_run_folders_are_0700_and_their_files_0600(tmp_path, runs_dir):
    run = new_run_dir("demo", runs_dir)
    assert _mode(run) == 0o700
    other = tmp_path / "elsewhere" / "run"  # a --run-dir the engine creates itself
    assert run_engine(tiny(steps=1, every=1), other, quiet=True) == 0
    assert _mode(other) == 0o700
    for path in [other / "events.jsonl", other / "status.json", other / "config.yaml", other / "secret",
                 *(p for p in other.rglob("*") if p.is_file())]:
        assert _mode(path) & 0o077 == 0, path
    for path in (p for p in other.rglob("*") if p.is_dir()):
        assert _mode(path) & 0o077 == 0, path


def test_an_old_world_readable_events_file_becomes_private(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("")
    os.chmod(path, 0o644)
    EventLog(path).close()
    assert _mode(path) == 0o600


def test_detached_engine_log_is_private(tmp_path):
    from grpo_studio.engine.common.launcher import start_detached

    run = tmp_path / "run"
    pid = start_detached(["--version"], run)  # the quickest command: only engine.log matters here
    os.waitpid(pid, 0)
    assert _mode(run / "engine.log") == 0o600 and _mode(run) == 0o700


def test_another_user_cannot_read_the_run(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to act as a second local user")
    base = Path(tempfile.mkdtemp())  # under /tmp, open to all: only the run folder's own mode protects it
    try:
        os.chmod(base, 0o755)
        run = base / "run"
        assert run_engine(tiny(steps=1, every=0), run, quiet=True) == 0
        for path in (run / "events.jsonl", run / "status.json"):
            probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    "/usr/bin/python3", "-c", f"open({str(path)!r}).read()"],
                                   capture_output=True, text=True)
            assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
