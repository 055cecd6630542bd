"""Issue 27 finding 7: a pid in status.json is not proof. A running run whose lock nobody holds has no engine
(whatever process has the pid now), and the GUI's stop path signals only a process that holds the run's lock."""
import subprocess
import sys
import time

import pytest

from grpo_studio.engine.common.engine_proof import is_runs_engine, lock_holders
from grpo_studio.engine.common.runs import RunPaths, summarize_run, write_status
from grpo_studio.engine.run.lock import RunLock

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/locks")


@pytest.fixture
def stranger():
    """A live process that is not an engine (pid 1 of a container, a reused pid ...)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(0.2)
    yield process
    process.kill()
    process.wait()


def make_running_run(runs_dir, name, pid):
    paths = RunPaths(runs_dir / name)
    paths.root.mkdir(parents=True)
    paths.config.write_text("model: demo\n")
    RunLock(paths.root).acquire().release()  # an engine ran here once: its lock file stays
    write_status(paths, pid=pid, state="running", started=time.time(), step=3, total_steps=10)
    return paths


def test_a_stranger_with_the_pid_is_not_the_engine(runs_dir, stranger):
    paths = make_running_run(runs_dir, "from-a-container", stranger.pid)
    assert lock_holders(paths.lock) == set()
    assert not is_runs_engine(stranger.pid, paths.lock)
    assert summarize_run(paths.root).state == "crashed"


def test_the_gui_stop_path_never_signals_a_stranger(runs_dir, stranger, qapp):
    from grpo_studio.gui.engine_bridge import send_engine_command

    paths = make_running_run(runs_dir, "from-a-container", stranger.pid)
    write_status(paths, state="starting")  # even while it would count as starting
    answer = send_engine_command(paths.root, "stop")
    assert not answer["ok"] and "not this run's engine" in answer["error"]
    time.sleep(0.3)
    assert stranger.poll() is None  # still alive: no SIGTERM reached it


def test_the_lock_holder_is_the_engine(runs_dir):
    import os

    paths = make_running_run(runs_dir, "mine", os.getpid())
    with RunLock(paths.root):
        assert lock_holders(paths.lock) == {os.getpid()}
        assert is_runs_engine(os.getpid(), paths.lock)
        assert summarize_run(paths.root).state == "running"
