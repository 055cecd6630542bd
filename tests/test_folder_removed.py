"""Issue 27 finding 10: `rm -rf` of a run folder while it trains. The engine puts back its lock, key, config and
a full status, so `runs` says running and `stop` reaches it (and saves a checkpoint in the recreated folder)."""
import shutil
import sys

import pytest

from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths, read_status, summarize_run
from test_detach_e2e import cli, detach, gone, small_config, steps_done, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a folder in use cannot be removed on Windows")


def test_a_run_folder_removed_while_training_comes_back_and_stops(tmp_path):
    config = small_config(tmp_path / "config.yaml", steps=2000)
    run = tmp_path / "run"
    pid = detach(config, run)
    try:
        wait_for(lambda: (run / "events.jsonl").exists() and steps_done(run) >= 2, timeout=300)
        shutil.rmtree(run, ignore_errors=True)  # as `rm -rf`: the engine may write meanwhile
        paths = RunPaths(run)
        wait_for(lambda: paths.lock.exists() and read_status(paths).get("endpoint"), timeout=300)
        assert summarize_run(run).state == "running"
        assert paths.config.is_file() and paths.secret.is_file()
        stop = cli("stop", run, "--wait", timeout=300)
        assert stop.returncode == 0, stop.stderr
        wait_for(lambda: gone(pid), timeout=120)
    finally:
        if not gone(pid):
            import os
            import signal

            os.kill(pid, signal.SIGKILL)
    events = list(read_events(RunPaths(run).events))
    assert any(e["type"] == "log" and "was removed while the run trained" in e["message"] for e in events)
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "stopped"
    assert summarize_run(run).state == "stopped"
