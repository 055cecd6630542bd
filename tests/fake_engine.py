"""A torch-free stand-in for the engine: the real lock, event log, server and control, emitting a progress
event every `interval` seconds until stopped (or `steps` reached). Tests start it as a process:

    python tests/fake_engine.py RUN_DIR [--interval S] [--steps N]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_fake(run_dir: Path, interval: float = 0.01, steps: int = 1_000_000) -> int:
    from grpo_studio.engine.train.control import Control
    from grpo_studio.engine.common.events import EventLog
    from grpo_studio.engine.run.lock import RunLock
    from grpo_studio.engine.common.runs import RunPaths, write_status
    from grpo_studio.engine.run.server import EngineServer

    paths = RunPaths(run_dir)
    with RunLock(run_dir):
        events = EventLog(paths.events)
        control = Control()
        write_status(paths, pid=os.getpid(), state="starting", started=time.time(), step=0, total_steps=steps)
        server = EngineServer(paths, events, control).start()
        events.emit("hello", version="fake", device="cpu", gpu_name=None, gpu_total=None, config_hash="x",
                    total_steps=steps)
        write_status(paths, state="running")
        reason, step = "finished", 0
        while step < steps:
            if control.stop_requested:
                reason = "stopped"
                break
            def save(step=step):
                events.emit("checkpoint", step=step, path=str(paths.checkpoints / f"step-{step}"))

            if control.paused:
                events.emit("phase", phase="paused", step=step)
                control.wait_while_paused(0.02, on_save=save)
                continue
            if control.take_save_request():
                save()
            step += 1
            events.step = step
            events.emit("progress", step=step, total_steps=steps, eta_s=None, tokens_per_s=None)
            time.sleep(interval)
        if reason == "stopped":
            events.emit("checkpoint", step=step, path=str(paths.checkpoints / f"step-{step}"))
        write_status(paths, state=reason, step=step)
        events.emit("done", reason=reason, adapter=None)
        server.close()
        events.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=1_000_000)
    args = parser.parse_args()
    try:
        sys.exit(run_fake(args.run_dir, args.interval, args.steps))
    except Exception as error:  # the lock test reads this
        print(f"error: {error}", file=sys.stderr)
        sys.exit(getattr(error, "exit_code", 1))
