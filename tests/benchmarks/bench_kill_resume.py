"""Reliability: kill -9 the demo engine at random moments (some while a checkpoint is being written),
resume each time, and check that no checkpoint is ever corrupt, that every resumed engine's first step is
the step after the last complete checkpoint (training is deterministic, so an equal adapter alone would not
tell a resume from a restart at step 0), and that the final adapter is trained (not all zeros) and equals
that of an uninterrupted run with the same seed. Prints JSON.

    python tests/benchmarks/bench_kill_resume.py [--steps 400] [--kills 20] [--checkpoint-every 5] [--seed 0]

A kill comes at a random moment up to --max-delay after a resumed engine's first step, or (about a third of
the time) the moment a checkpoint's temp folder appears. --steps must leave room for every kill: the run
goes on to its end after the last one.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from grpo_studio.engine.checkpoints.checkpoint import STATE_FILE, complete_checkpoints
from grpo_studio.engine.common.config import save_config
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths, summarize_run

CLI = [sys.executable, "-m", "grpo_studio", "train"]


def write_config(path: Path, steps: int, checkpoint_every: int) -> Path:
    config = demo_config(steps=steps)
    config.batch.prompts_per_step = 4  # short steps, so many kills fit into one run
    config.batch.micro_batch_size = 12
    config.checkpoint_every = checkpoint_every
    config.log_samples_every = 0
    save_config(config, path)
    return path


def start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([*CLI, *args, "--quiet"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def last_seq(run_dir: Path) -> int:
    return max([e["seq"] for e in read_events(RunPaths(run_dir).events)], default=-1)


def progressed_since(run_dir: Path, seq: int) -> bool:
    return first_step_since(run_dir, seq) is not None


def first_step_since(run_dir: Path, seq: int) -> int | None:
    """The step of the first progress event after event `seq` (the first step an engine segment trained)."""
    return next((e["step"] for e in read_events(RunPaths(run_dir).events, seq + 1) if e["type"] == "progress"),
                None)


def resume_step(run_dir: Path) -> int:
    """The step a resume must train first: the one after the newest complete checkpoint (1 without one)."""
    done = complete_checkpoints(RunPaths(run_dir).checkpoints)
    return (done[-1][0] if done else 0) + 1


def trained(adapter: dict) -> bool:
    """LoRA's B matrices start at zero: any non-zero one means training changed the adapter."""
    return any(bool(t.any()) for name, t in adapter.items() if "lora_B" in name)


def kill_during_checkpoint(process: subprocess.Popen, run_dir: Path, timeout: float) -> bool:
    """Poll for a checkpoint being written (its temp folder) and kill at that moment; False if none came."""
    folder = RunPaths(run_dir).checkpoints
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if folder.is_dir() and any(p.name.startswith(".tmp-step-") for p in folder.iterdir()):
            process.send_signal(signal.SIGKILL)
            return True
        time.sleep(0.0005)  # a tiny model's checkpoint is written in a few milliseconds
    return False


def ended(run_dir: Path) -> bool:
    """The engine wrote its final `done` (a kill that lands after it interrupts nothing)."""
    events = list(read_events(RunPaths(run_dir).events))
    return bool(events) and events[-1]["type"] == "done"


def corrupt_checkpoints(run_dir: Path) -> list[str]:
    """Every complete checkpoint must load: adapter weights and trainer state."""
    bad = []
    for step, path in complete_checkpoints(RunPaths(run_dir).checkpoints):
        try:
            weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
            state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
            if not weights or state["step"] != step:
                bad.append(path.name)
        except Exception:  # noqa: BLE001 - any failure to load is a corrupt checkpoint
            bad.append(path.name)
    return bad


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--max-delay", type=float, default=1.0, help="a kill comes up to this long after the "
                                                                      "resumed engine's first step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    config = write_config(work / "config.yaml", args.steps, args.checkpoint_every)
    straight, run_dir, log = work / "straight", work / "killed", work / "bench.log"

    began = time.monotonic()
    assert start([str(config), "--run-dir", str(straight)], log).wait() == 0, f"uninterrupted run failed: {log}"
    straight_s = time.monotonic() - began

    kills, during_checkpoint, resumes_ok, corrupt = 0, 0, 0, set()
    not_crashed_after_kill = 0
    resume_steps: list[dict] = []  # per resume: the step it had to start at, and the one it started at
    process = start([str(config), "--run-dir", str(run_dir)], log)
    segment_start, resumed, expected_step = -1, False, 1
    while True:
        # wait until this engine segment trains a step (a resumed one: it loaded its checkpoint) or ends
        while process.poll() is None and not progressed_since(run_dir, segment_start):
            time.sleep(0.02)
        if resumed:
            resume_steps.append({"expected": expected_step, "first": first_step_since(run_dir, segment_start)})
        if resumed and (process.poll() is None or process.returncode == 0):
            resumes_ok += 1
        if process.poll() is not None or kills >= args.kills:
            break
        if rng.random() < 0.35 and kill_during_checkpoint(process, run_dir, timeout=30):
            during_checkpoint += 1
        else:
            time.sleep(rng.uniform(0, args.max_delay))
            process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode != -signal.SIGKILL or ended(run_dir):
            break  # it finished just before the signal: --steps left no room for more kills
        kills += 1
        if summarize_run(run_dir).state != "crashed":
            not_crashed_after_kill += 1
        corrupt.update(corrupt_checkpoints(run_dir))
        segment_start, resumed, expected_step = last_seq(run_dir), True, resume_step(run_dir)
        process = start(["--resume", "--run-dir", str(run_dir)], log)
    code = process.wait()
    finished = code == 0 and summarize_run(run_dir).state == "finished"
    corrupt.update(corrupt_checkpoints(run_dir))
    a = load_file(str(straight / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(run_dir / "adapter" / "adapter_model.safetensors")) if finished else {}
    equal = bool(a) and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    events = list(read_events(RunPaths(run_dir).events))
    result = {
        "steps": args.steps, "checkpoint_every": args.checkpoint_every, "kills": kills,
        "kills_during_checkpoint_write": during_checkpoint, "resumes_succeeded": resumes_ok,
        "resumes_started_after_last_checkpoint": bool(resume_steps) and all(
            r["expected"] == r["first"] for r in resume_steps),
        "resume_steps": resume_steps,
        "killed_runs_not_shown_crashed": not_crashed_after_kill, "corrupt_checkpoints": sorted(corrupt),
        "final_state": summarize_run(run_dir).state, "final_adapter_equal": equal,
        "final_adapter_trained": trained(b),
        "events_gap_free": [e["seq"] for e in events] == list(range(len(events))),
        "uninterrupted_s": round(straight_s, 1), "total_s": round(time.monotonic() - began, 1),
        "work_dir": str(work),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
