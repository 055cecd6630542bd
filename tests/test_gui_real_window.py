"""The real app in a real X window (Xvfb + the xcb platform, where Qt paints for real — the offscreen platform
never reached the painting path that crashed PySide6 6.12.0): start the demo from New run, watch the Monitor
train for 30 s, pause, save while paused, resume, switch tabs and pages, close the window with the run live,
reopen the app. The app process must never die: any faulthandler output or a non-zero exit fails the test.

The walk-through itself is tests/real_window_driver.py, run as the app's own process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

DRIVER = Path(__file__).parent / "real_window_driver.py"
CRASH_MARKERS = ("Fatal Python error", "Segmentation fault", "Aborted", "Traceback (most recent call last)")


@pytest.fixture
def display():
    """A private Xvfb; it picks a free display number itself (-displayfd)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb): the real-window test needs an X server")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten",
                               "tcp"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    with os.fdopen(read_fd) as numbers:
        number = numbers.readline().strip()
    if not number:
        server.kill()
        pytest.fail(f"Xvfb did not start: {server.stderr.read().decode()[-500:]}")
    yield f":{number}"
    server.terminate()
    server.wait(10)


def run_app(mode: str, env: dict, timeout: float) -> tuple[list[dict], subprocess.CompletedProcess]:
    done = subprocess.run([sys.executable, "-X", "faulthandler", str(DRIVER), mode], env=env, capture_output=True,
                          text=True, timeout=timeout)
    checks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"check"')]
    return checks, done


def assert_alive_and_ok(mode: str, checks: list[dict], done: subprocess.CompletedProcess) -> dict[str, dict]:
    crashed = [m for m in CRASH_MARKERS if m in done.stderr]
    assert not crashed and done.returncode == 0, \
        f"{mode}: the app exited with {done.returncode}; stderr:\n{done.stderr[-4000:]}\nchecks: {checks}"
    failed = [c for c in checks if not c["ok"]]
    assert not failed, f"{mode}: {failed}"
    assert checks and checks[-1]["check"] == "walkthrough done", checks
    return {c["check"]: c for c in checks}


def stop_engines(runs_dir: Path) -> None:
    """Whatever happened, no engine outlives the test."""
    for status_file in runs_dir.glob("*/status.json"):
        status = json.loads(status_file.read_text())
        pid = status.get("pid")
        if isinstance(pid, int) and status.get("state") in ("starting", "running", "paused"):
            try:
                os.killpg(pid, signal.SIGKILL)  # the engine leads its own session
            except OSError:
                pass


def test_live_run_in_a_real_window_never_kills_the_app(display, tmp_path):
    runs_dir = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if k != "GRPO_STUDIO_CLI"}
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", GRPO_STUDIO_RUNS_DIR=str(runs_dir),
               GRPO_STUDIO_SETTINGS=str(tmp_path / "settings.ini"), GRPO_STUDIO_GPU="none",
               GRPO_STUDIO_INSTANCE=f"grpo-studio-real-window-{os.getpid()}", HF_HUB_OFFLINE="1",
               PYTHONFAULTHANDLER="1")
    try:
        started = time.monotonic()
        checks, done = run_app("start", env, timeout=420)
        first = assert_alive_and_ok("start", checks, done)
        assert first["watched"]["seconds"] >= 30 and first["watched"]["step"] > first["training"]["step"]
        assert first["saved while paused"]["step"] == first["paused"]["step"]
        run_dir = Path(first["started"]["run_dir"])
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] in ("running", "paused", "starting"), status  # the window closed, training did not

        checks, done = run_app("reopen", env, timeout=240)
        second = assert_alive_and_ok("reopen", checks, done)
        assert Path(second["reopened"]["run_dir"]) == run_dir
        assert second["stopped"]["step"] > first["resumed"]["step"]
        print(f"real-window walk-through: {time.monotonic() - started:.0f} s, {second['stopped']['step']} steps")
    finally:
        stop_engines(runs_dir)
