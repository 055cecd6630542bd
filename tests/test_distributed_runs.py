"""2-rank runs under torchrun (`grpo-studio train --gpus 2`, gloo on the CPU): the demo learns, a stop through
the socket ends both ranks with one checkpoint, a killed rank crashes the run and a resume continues it to the
adapter an uninterrupted run reaches; a resume on another number of ranks is refused."""
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from safetensors.torch import load_file

from grpo_studio.engine.common.client import send_command
from grpo_studio.engine.common.config import save_config
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths, read_status, summarize_run

pytestmark = pytest.mark.slow
STEPS = 40


def train_command(*args) -> list[str]:
    return [sys.executable, "-P", "-m", "grpo_studio", "train", *args, "--quiet"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONSAFEPATH": "1"}


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    config = demo_config(steps=STEPS)
    config.checkpoint_every = 4
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    save_config(config, path)
    return path


@pytest.fixture(scope="module")
def stop_config(tmp_path_factory):
    """Checkpoints only when the run ends or stops: a stop must write exactly one."""
    config = demo_config(steps=300)
    config.checkpoint_every = 0
    path = tmp_path_factory.mktemp("stop-config") / "config.yaml"
    save_config(config, path)
    return path


@pytest.fixture(scope="module")
def full_run(config_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    subprocess.run(train_command(str(config_file), "--gpus", "2", "--run-dir", str(run)), env=env(), check=True,
                   timeout=600)
    return run


def events(run) -> list[dict]:
    return list(read_events(RunPaths(run).events))


def wait_for_step(run, step: int, process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["type"] == "progress" and e["step"] >= step for e in events(run)):
            return
        assert process.poll() is None, "the run ended early"
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached")


def adapter(run) -> dict:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def test_two_rank_demo_run_learns(full_run):
    metrics = [e for e in events(full_run) if e["type"] == "metrics"]
    assert len(metrics) == STEPS and events(full_run)[-1]["reason"] == "finished"
    hello = next(e for e in events(full_run) if e["type"] == "hello")
    assert hello["device"] == "cpu"
    correct = [m["rewards"]["math_correct"]["mean"] for m in metrics]
    first, last = sum(correct[:10]) / 10, sum(correct[-10:]) / 10
    assert last > first + 0.1, (first, last)
    # every metric covers both ranks' completions: 16 prompts x 8 = 128, so means are multiples of 1/128
    assert all(abs(c * 128 - round(c * 128)) < 1e-6 for c in correct)
    assert not (full_run / "rank-errors").exists() or not list((full_run / "rank-errors").iterdir())


def test_pause_then_stop_through_the_socket_ends_both_ranks(stop_config, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(train_command(str(stop_config), "--gpus", "2", "--run-dir", str(run)), env=env())
    try:
        wait_for_step(run, 2, process)
        assert send_command(run, "pause")["ok"]  # every rank holds at the same boundary ...
        deadline = time.monotonic() + 60
        while read_status(RunPaths(run)).get("state") != "paused":
            assert time.monotonic() < deadline, "never paused"
            time.sleep(0.05)
        held = len([e for e in events(run) if e["type"] == "progress"])
        time.sleep(1.5)
        assert len([e for e in events(run) if e["type"] == "progress"]) == held
        assert send_command(run, "resume")["ok"]  # ... and goes on together
        wait_for_step(run, held + 1, process)
        assert send_command(run, "stop")["ok"]
        assert process.wait(timeout=120) == 0  # torchrun returns once both ranks have exited, all cleanly
    finally:
        if process.poll() is None:
            process.kill()
    found = events(run)
    assert found[-1]["type"] == "done" and found[-1]["reason"] == "stopped"
    checkpoints = [e["step"] for e in found if e["type"] == "checkpoint"]
    assert len(checkpoints) == 1 and checkpoints[0] < 300
    assert read_status(RunPaths(run))["state"] == "stopped"
    # a resume on another number of ranks is refused, naming the number that works
    refused = subprocess.run(train_command("--resume", str(run), "--gpus", "1"), env=env(), capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2
    error = [e for e in events(run) if e["type"] == "error"][-1]
    assert "2 GPU(s)" in error["message"] and "--gpus 2" in error["hint"]


def test_killed_rank_crashes_the_run_and_resume_matches_an_uninterrupted_run(config_file, full_run, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(train_command(str(config_file), "--gpus", "2", "--run-dir", str(run)), env=env())
    try:
        wait_for_step(run, 6, process)
        rank0 = psutil.Process(read_status(RunPaths(run))["pid"])
        rank1 = [p for p in rank0.parent().children() if p.pid != rank0.pid]
        assert len(rank1) == 1
        os.kill(rank1[0].pid, signal.SIGKILL)
        assert process.wait(timeout=120) != 0
        assert not rank0.is_running() or rank0.status() == psutil.STATUS_ZOMBIE
    finally:
        if process.poll() is None:
            process.kill()
    summary = summarize_run(run)
    assert summary.state == "crashed", summary
    assert "another rank stopped" in [e for e in events(run) if e["type"] == "error"][-1]["message"]
    saved = [e["step"] for e in events(run) if e["type"] == "checkpoint"]
    assert saved and max(saved) < STEPS

    subprocess.run(train_command("--resume", str(run), "--gpus", "2"), env=env(), check=True, timeout=600)
    assert events(run)[-1]["reason"] == "finished"
    resumed, uninterrupted = adapter(run), adapter(full_run)
    assert resumed.keys() == uninterrupted.keys()
    assert max((resumed[k] - uninterrupted[k]).abs().max().item() for k in resumed) <= 1e-6
    assert any(v.abs().sum() > 0 for k, v in resumed.items() if "lora_B" in k)


def test_an_error_on_rank_1_reaches_rank_0s_error_event(tmp_path):
    rewards = tmp_path / "rewards.py"
    rewards.write_text("import os\n\n\ndef picky(completions, **kwargs):\n"
                       "    if os.environ.get('RANK') == '1':\n"
                       "        raise ValueError('this reward breaks on rank 1')\n"
                       "    return [0.0] * len(completions)\n")
    config = demo_config(steps=5)
    config.rewards[1].name = f"{rewards}:picky"
    save_config(config, tmp_path / "config.yaml")
    run = tmp_path / "run"
    done = subprocess.run(train_command(str(tmp_path / "config.yaml"), "--gpus", "2", "--run-dir", str(run)),
                          env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    error = [e for e in events(run) if e["type"] == "error"][-1]
    assert error["message"].startswith("rank 1: ") and "breaks on rank 1" in error["message"], error
    assert events(run)[-1]["type"] == "done" and summarize_run(run).state == "failed"


def test_ctrl_c_on_the_launcher_stops_every_rank_with_a_checkpoint(stop_config, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(train_command(str(stop_config), "--gpus", "2", "--run-dir", str(run)), env=env())
    try:
        wait_for_step(run, 2, process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    found = events(run)
    assert found[-1]["type"] == "done" and found[-1]["reason"] == "stopped"
    assert len([e for e in found if e["type"] == "checkpoint"]) == 1
