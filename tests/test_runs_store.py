"""The run store: states from status.json + events.jsonl, pid checks, lookup and deletion."""
import json
import os
import subprocess
import sys
import time

import pytest

from grpo_studio.engine.common.errors import RunBusyError, StudioError
from grpo_studio.engine.common.events import EventLog
from grpo_studio.engine.common.runs import (RunPaths, delete_run, list_runs, new_run_dir, resolve_run, summarize_run,
                                     write_status)


def make_run(runs_dir, name, *, state, pid, done=None, rewards=(0.1, 0.5, 0.3), started=None):
    root = runs_dir / name
    root.mkdir(parents=True)
    paths = RunPaths(root)
    paths.config.write_text("model: demo\ndataset: {path: demo}\n")
    write_status(paths, pid=pid, state=state, started=started or time.time(), step=len(rewards),
                 total_steps=10)
    log = EventLog(paths.events)
    log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=10)
    for step, reward in enumerate(rewards, 1):
        log.step = step
        log.emit("metrics", step=step, reward=reward, reward_std=0.0, rewards={}, loss=0.0, kl=0.0,
                 clip_ratio=0.0, completion_length={"mean": 1, "max": 1}, lr=1e-3, grad_norm=0.1)
    if done:
        log.emit("done", reason=done, adapter=None)
    log.close()
    return root


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_states_from_done_events_and_live_pids(runs_dir):
    make_run(runs_dir, "a-finished", state="finished", pid=dead_pid(), done="finished")
    make_run(runs_dir, "b-running", state="running", pid=os.getpid())
    make_run(runs_dir, "c-crashed", state="running", pid=dead_pid())
    make_run(runs_dir, "d-paused", state="paused", pid=os.getpid())
    states = {s.name: s.state for s in list_runs(runs_dir)}
    assert states == {"a-finished": "finished", "b-running": "running", "c-crashed": "crashed",
                      "d-paused": "paused"}


def test_reused_pid_is_not_mistaken_for_the_engine(runs_dir):
    # our own process is alive, but it was created an hour after this "engine" said it started
    make_run(runs_dir, "reused", state="running", pid=os.getpid(), started=time.time() - 3600)
    assert summarize_run(runs_dir / "reused").state == "crashed"


def test_rewards_and_best_reward_follow_appended_events(runs_dir):
    root = make_run(runs_dir, "r", state="running", pid=dead_pid(), rewards=(0.2, 0.9, 0.4))
    summary = summarize_run(root)
    assert (summary.reward, summary.best_reward, summary.step) == (0.4, 0.9, 3)
    log = EventLog(RunPaths(root).events)
    log.emit("metrics", step=4, reward=0.95, reward_std=0.0, rewards={}, loss=0.0, kl=0.0, clip_ratio=0.0,
             completion_length={"mean": 1, "max": 1}, lr=1e-3, grad_norm=0.1)
    log.emit("error", kind="data", message="bad row", hint="fix it")
    log.emit("done", reason="failed", adapter=None)
    log.close()
    summary = summarize_run(root)
    assert (summary.reward, summary.best_reward, summary.state) == (0.95, 0.95, "failed")
    assert summary.error == "bad row (hint: fix it)"


def test_resumed_run_is_live_again_after_an_earlier_done(runs_dir):
    root = make_run(runs_dir, "again", state="stopped", pid=dead_pid(), done="stopped")
    assert summarize_run(root).state == "stopped"
    log = EventLog(RunPaths(root).events)
    log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=10)
    log.close()
    write_status(RunPaths(root), pid=os.getpid(), state="running", started=time.time())
    assert summarize_run(root).state == "running"


def test_resolve_by_path_name_and_prefix(runs_dir):
    first = new_run_dir("demo", runs_dir)
    (first / "config.yaml").write_text("model: demo\n")  # a folder given by path must be a run (issue 27, 14)
    (runs_dir / "other-run").mkdir()
    assert resolve_run(str(first)) == first.resolve()
    assert resolve_run(first.name, runs_dir) == first
    assert resolve_run("other", runs_dir) == runs_dir / "other-run"
    with pytest.raises(StudioError, match="no run named 'zzz'"):
        resolve_run("zzz", runs_dir)


def test_delete_refuses_live_runs(runs_dir):
    live = make_run(runs_dir, "live", state="running", pid=os.getpid())
    with pytest.raises(RunBusyError):
        delete_run(live)
    gone = make_run(runs_dir, "gone", state="finished", pid=dead_pid(), done="finished")
    delete_run(gone)
    assert not gone.exists() and live.exists()


def test_runs_command_prints_states(runs_dir):
    make_run(runs_dir, "x-crashed", state="running", pid=dead_pid())
    out = subprocess.run([sys.executable, "-m", "grpo_studio", "runs", "--json"], capture_output=True, text=True,
                         env={**os.environ, "GRPO_STUDIO_RUNS_DIR": str(runs_dir)}, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [(r["name"], r["state"]) for r in rows] == [("x-crashed", "crashed")]


def test_runs_are_listed_newest_first(runs_dir):
    """The one place that orders runs (the Runs page and the Export/Try run choice show this order)."""
    for name, started in (("old", 1000.0), ("newest", 3000.0), ("middle", 2000.0)):
        make_run(runs_dir, name, state="finished", pid=dead_pid(), done="finished", started=started)
    assert [s.name for s in list_runs(runs_dir)] == ["newest", "middle", "old"]
