"""The one way to follow a run (client.follow_events: stop, start grace, the resumed run's old `done`), the
one liveness check, pause as protocol state with save_now served while paused, and the one launch path."""
import json
import os
import threading
import time

from test_server import start_fake

from grpo_studio.engine.common import launcher
from grpo_studio.engine.common.client import follow_events, send_command
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.events import EventLog, read_events
from grpo_studio.engine.common.protocol import RunOutcome
from test_events_schema import event_problems
from grpo_studio.engine.common.runs import RunPaths, read_status, run_is_live, write_status


def finished_run(root, steps=3):
    """A run folder whose file ends with `done` (a finished segment) and whose engine is gone."""
    paths = RunPaths(root)
    root.mkdir(parents=True)
    write_status(paths, pid=None, state="finished", started=time.time())
    log = EventLog(paths.events)
    log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=9)
    for step in range(1, steps + 1):
        log.step = step
        log.emit("progress", step=step, total_steps=9, eta_s=None, tokens_per_s=None)
    log.emit("done", reason="stopped", adapter=None)
    return paths, log


def test_run_outcome_only_counts_the_latest_segments_done():
    outcome = RunOutcome()
    outcome.see({"type": "done", "seq": 5, "reason": "stopped"})
    assert outcome.done["reason"] == "stopped"
    outcome.see({"type": "hello", "seq": 6})  # resumed: that done no longer describes the run
    assert outcome.done is None
    just_launched = RunOutcome(ignore_before_seq=6)  # an engine was started on a file that ends in done
    just_launched.see({"type": "done", "seq": 5, "reason": "stopped"})
    assert just_launched.done is None


def test_follow_events_stops_when_asked(tmp_path):
    run_dir = tmp_path / "run"
    process = start_fake(run_dir, "--interval", "0.05")
    stop, got = threading.Event(), []
    try:
        follower = threading.Thread(target=lambda: got.extend(follow_events(run_dir, stop=stop)))
        follower.start()
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        follower.join(timeout=3)
        assert not follower.is_alive() and len(got) >= 5
        assert [e["seq"] for e in got] == list(range(len(got)))
    finally:
        process.kill()
        process.wait()


def test_follow_with_start_grace_waits_past_the_old_done_for_the_resumed_segment(tmp_path):
    paths, log = finished_run(tmp_path / "run")
    old = list(read_events(paths.events))
    assert [e["type"] for e in follow_events(paths.root)][-1] == "done"  # no engine coming: ends at once

    got = []
    follower = threading.Thread(target=lambda: got.extend(follow_events(paths.root, start_grace_s=10)))
    follower.start()
    time.sleep(0.8)  # the engine is still importing torch: nothing new, and the old done must not end it
    assert follower.is_alive()
    write_status(paths, pid=os.getpid(), state="running", started=time.time())
    log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=9)
    log.step = 4
    log.emit("progress", step=4, total_steps=9, eta_s=None, tokens_per_s=None)
    log.emit("done", reason="finished", adapter=None)
    write_status(paths, state="finished")
    log.close()
    follower.join(timeout=10)
    assert not follower.is_alive()
    assert got[: len(old)] == old and [e["type"] for e in got[len(old):]] == ["hello", "progress", "done"]
    assert got[-1]["reason"] == "finished"


def test_liveness_needs_a_live_state_and_the_same_process(tmp_path):
    now = time.time()
    assert run_is_live({"pid": os.getpid(), "state": "paused", "started": now})
    assert not run_is_live({"pid": os.getpid(), "state": "finished", "started": now})
    assert not run_is_live({"pid": os.getpid(), "state": "running", "started": now - 3600 * 24 * 365})  # reused


def test_save_now_while_paused_is_served_at_once():
    control = Control()
    saved = []
    control.handle("pause")
    waiter = threading.Thread(target=lambda: control.wait_while_paused(0.01, on_save=lambda: saved.append(1)))
    waiter.start()
    control.handle("save_now")
    deadline = time.monotonic() + 5
    while not saved and time.monotonic() < deadline:
        time.sleep(0.01)
    assert saved == [1] and waiter.is_alive()  # saved, and still paused
    control.handle("resume")
    waiter.join(timeout=2)
    assert not waiter.is_alive() and not control.take_save_request()  # served once, not again after resume


def test_engine_reports_pause_as_a_phase_and_saves_while_paused(tmp_path):
    run_dir = tmp_path / "run"
    process = start_fake(run_dir, "--interval", "0.02")
    try:
        assert send_command(run_dir, "pause")["ok"]
        events = follow_events(run_dir)
        paused = next(e for e in events if e["type"] == "phase" and e["phase"] == "paused")
        assert event_problems(paused) == []
        assert read_status(RunPaths(run_dir))["state"] in ("running", "paused")
        assert send_command(run_dir, "save_now")["ok"]
        checkpoint = next(e for e in events if e["type"] == "checkpoint")
        assert checkpoint["step"] == paused["step"]  # at once, at the step it paused at
        assert send_command(run_dir, "stop")["ok"]
        assert [e for e in events][-1]["type"] == "done"
    finally:
        process.kill()
        process.wait()


def test_the_launcher_honours_grpo_studio_cli(tmp_path, monkeypatch):
    fake = tmp_path / "fake_cli.py"
    fake.write_text("import json, os, sys\nprint(json.dumps(sys.argv[1:]))\n")
    monkeypatch.setenv(launcher.CLI_ENV, f"python3 '{fake}' --flag")
    assert launcher.engine_command(["train", "x.yaml"]) == ["python3", str(fake), "--flag", "train", "x.yaml"]
    run_dir = tmp_path / "run"
    pid = launcher.start_detached(["train", "x.yaml"], run_dir)
    status = read_status(RunPaths(run_dir))
    assert status["pid"] == pid and status["state"] == "starting"  # the production path: pid at once
    deadline = time.monotonic() + 10
    while '["--flag", "train", "x.yaml"]' not in RunPaths(run_dir).log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = RunPaths(run_dir).log.read_text()
    assert "=== " in log and json.dumps(["--flag", "train", "x.yaml"]) in log  # the log header, then its output
