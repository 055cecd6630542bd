"""Issue 27 finding 3: a foreground `train` whose terminal closes (SIGHUP, then every write to the terminal
fails) stops like Ctrl-C: it saves a checkpoint, ends as stopped and exits 0, its output going to engine.log."""
import os
import pty
import signal
import subprocess
import sys

import pytest

from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths, summarize_run
from test_detach_e2e import CLI, small_config, steps_done, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP and ptys are POSIX")


def test_sighup_saves_a_checkpoint_and_ends_stopped(tmp_path):
    config = small_config(tmp_path / "config.yaml", steps=400)
    run = tmp_path / "run"
    terminal, side = pty.openpty()
    process = subprocess.Popen([*CLI, "train", str(config), "--run-dir", str(run)], stdin=side, stdout=side,
                               stderr=side, start_new_session=True)
    os.close(side)
    try:
        reader = os.fdopen(terminal, "rb", buffering=0)
        wait_for(lambda: (run / "events.jsonl").exists() and steps_done(run) >= 2, timeout=300)
        reader.close()  # the terminal is gone: writes to it now fail
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=300) == 0
    finally:
        if process.poll() is None:
            process.kill()
    events = list(read_events(RunPaths(run).events))
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "stopped"
    assert any(e["type"] == "checkpoint" for e in events)
    assert summarize_run(run).state == "stopped"
    assert "SIGHUP" in RunPaths(run).log.read_text()
