"""The real app in a subprocess: the window shows and torch & co. are never imported. How fast it shows is a
benchmark figure (tests/benchmarks/bench_gui_startup.py), not an assert: a busy machine's wall clock says little."""
import json
import os
import subprocess
import sys

PROBE = "from grpo_studio.gui.app import main; raise SystemExit(main([]))"


def start_app(tmp_path, attempt: int) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", GRPO_STUDIO_STARTUP_PROBE="1",
               GRPO_STUDIO_SETTINGS=str(tmp_path / f"settings{attempt}.ini"),
               GRPO_STUDIO_RUNS_DIR=str(tmp_path / "runs"), GRPO_STUDIO_GPU="none",
               GRPO_STUDIO_INSTANCE=f"grpo-studio-startup-{os.getpid()}-{attempt}")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)


def test_window_opens_without_heavy_imports(tmp_path):
    result = start_app(tmp_path, 0)
    assert result["visible"] is True
    assert result["heavy_modules"] == []
    print(f"window visible {result['seconds_since_process_start']:.2f} s after process start")
