"""Issue 27 finding 6: a run's engine, socket and status belong to the folder the engine wrote them in. A copy
of a live run's folder (`cp -a runs/live runs/livecopy`) neither shows as running, nor controls the original,
nor — resumed — removes the original's socket."""
import os
import shutil
import sys
import time

import pytest

from grpo_studio.engine.common.client import EngineNotRunning, send_command
from grpo_studio.engine.common.events import EventLog
from grpo_studio.engine.common.runs import RunPaths, read_status, summarize_run, write_status
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.run.server import EngineServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


@pytest.fixture
def live(runs_dir):
    paths = RunPaths(runs_dir / "live")
    paths.root.mkdir(parents=True)
    paths.config.write_text("model: demo\n")
    write_status(paths, pid=os.getpid(), state="running", started=time.time() - 1, step=3, total_steps=10)
    events = EventLog(paths.events)
    control = Control()
    server = EngineServer(paths, events, control).start()
    yield paths, control
    server.close()
    events.close()


def test_a_copied_live_folder_is_not_running_and_controls_nothing(live, runs_dir):
    paths, control = live
    copy = runs_dir / "livecopy"
    shutil.copytree(paths.root, copy, symlinks=True)
    assert summarize_run(paths.root).state == "running"
    summary = summarize_run(copy)
    assert summary.state == "damaged" and "copy of a live run" in summary.damage
    with pytest.raises(EngineNotRunning):
        send_command(copy, "pause")
    assert not control.paused
    assert send_command(paths.root, "ping")["ok"]


def test_an_engine_started_on_a_copy_leaves_the_original_socket_alone(live, runs_dir):
    paths, _control = live
    endpoint = read_status(paths)["endpoint"]
    copy = RunPaths(runs_dir / "livecopy2")
    shutil.copytree(paths.root, copy.root, symlinks=True)
    events = EventLog(copy.events)
    # what a resumed engine does on the copy: its status first, then its own server
    write_status(copy, pid=os.getpid(), state="starting", started=time.time(),
                 folder=f"{os.stat(copy.root).st_dev}:{os.stat(copy.root).st_ino}")
    server = EngineServer(copy, events, Control()).start()
    try:
        assert os.path.exists(endpoint)  # the original's socket is still there
        assert read_status(copy)["endpoint"] != endpoint
        assert send_command(paths.root, "ping")["ok"] and send_command(copy.root, "ping")["ok"]
    finally:
        server.close()
        events.close()
    assert os.path.exists(endpoint)


def test_a_renamed_run_folder_keeps_its_engine(live, runs_dir):
    paths, _control = live
    moved = runs_dir / "renamed"
    os.rename(paths.root, moved)
    assert summarize_run(moved).state == "running"
    assert send_command(moved, "ping")["ok"]
    os.rename(moved, paths.root)
