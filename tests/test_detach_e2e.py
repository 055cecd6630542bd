"""The real demo engine, detached: the launcher returns at once, attach gets every event from the first,
stop saves and exits, and a kill -9 followed by `train --resume` ends with the uninterrupted run's adapter."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from grpo_studio.engine.common.client import follow_events
from grpo_studio.engine.common.config import save_config
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths, engine_alive, read_status, summarize_run

CLI = [sys.executable, "-m", "grpo_studio"]


def small_config(path, steps, checkpoint_every=0):
    config = demo_config(steps=steps)
    config.batch.prompts_per_step = 4  # a step in a fraction of a second on a busy CPU
    config.batch.micro_batch_size = 12
    config.checkpoint_every = checkpoint_every
    config.log_samples_every = 0
    save_config(config, path)
    return path


def cli(*args, timeout=120):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def detach(config, run_dir):
    started = time.monotonic()
    launcher = cli("train", config, "--run-dir", run_dir, "--detach", timeout=60)
    assert launcher.returncode == 0, launcher.stderr
    assert time.monotonic() - started < 30  # it returned at once, long before training ends
    pid = read_status(RunPaths(run_dir))["pid"]
    assert f"pid {pid}" in launcher.stdout and "grpo-studio attach" in launcher.stdout
    return pid


def wait_for(predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def steps_done(run_dir):
    return max([e["step"] for e in read_events(RunPaths(run_dir).events) if e["type"] == "progress"], default=0)


def gone(pid):
    try:
        os.waitpid(pid, os.WNOHANG)  # reap if it happens to be our child
    except ChildProcessError:
        pass
    return not engine_alive({"pid": pid})


def adapter(run_dir):
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def test_detached_run_survives_its_launcher_and_attach_gets_every_event(tmp_path):
    run_dir = tmp_path / "run"
    pid = detach(small_config(tmp_path / "c.yaml", 12), run_dir)
    events = list(follow_events(run_dir))  # the launcher is long gone; the engine trains on
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "hello" and events[-1]["type"] == "done" and events[-1]["reason"] == "finished"
    assert [e["step"] for e in events if e["type"] == "progress"] == list(range(1, 13))
    assert list(read_events(RunPaths(run_dir).events)) == events
    wait_for(lambda: gone(pid), 30)
    assert "Traceback" not in (run_dir / "engine.log").read_text()
    attach = cli("attach", run_dir)  # after the end: replays the file and reports the state
    assert attach.returncode == 0 and "is finished at step 12" in attach.stdout


def test_stop_saves_a_checkpoint_and_the_engine_exits(tmp_path):
    run_dir = tmp_path / "run"
    pid = detach(small_config(tmp_path / "c.yaml", 500), run_dir)
    wait_for(lambda: steps_done(run_dir) >= 2)
    stop = cli("stop", run_dir, "--wait", timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert "is stopped" in stop.stdout
    wait_for(lambda: gone(pid), 30)
    events = list(read_events(RunPaths(run_dir).events))
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "stopped"
    checkpoint = [e for e in events if e["type"] == "checkpoint"][-1]
    assert (run_dir / "checkpoints" / f"step-{checkpoint['step']}" / "complete.json").is_file()
    assert steps_done(run_dir) < 500
    again = cli("pause", run_dir)
    assert again.returncode != 0 and "no engine running" in again.stderr


@pytest.mark.slow  # two full demo runs and a restart
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = small_config(tmp_path / "c.yaml", 10, checkpoint_every=2)
    straight = tmp_path / "straight"
    assert cli("train", config, "--run-dir", straight, "--quiet").returncode == 0

    run_dir = tmp_path / "run"
    pid = detach(config, run_dir)
    wait_for(lambda: steps_done(run_dir) >= 5)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), 30)
    assert summarize_run(run_dir).state == "crashed"
    resume = cli("train", "--resume", "--run-dir", run_dir, "--quiet")
    assert resume.returncode == 0, resume.stderr
    events = list(read_events(RunPaths(run_dir).events))
    assert [e["seq"] for e in events] == list(range(len(events)))  # the sequence continues after the kill
    assert [e["reason"] for e in events if e["type"] == "done"] == ["finished"]
    assert summarize_run(run_dir).state == "finished"
    a, b = adapter(straight), adapter(run_dir)
    assert a.keys() == b.keys() and a
    assert all(torch.equal(a[k], b[k]) for k in a)
