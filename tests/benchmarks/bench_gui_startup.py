"""Benchmark: how long the desktop app takes from process start to a visible main window (offscreen Qt).

    python tests/benchmarks/bench_gui_startup.py [--repeats 5]

Each repeat starts three fresh processes, alternating, so a busy machine weighs on all three alike:
  app            `grpo-studio` as a user starts it, timed from the spawn to the line the app prints once its
                 window is shown (GRPO_STUDIO_STARTUP_PROBE), with the heavy modules it had imported (none
                 should: the GUI imports only the torch-free engine.common), and to the process's exit,
  app_heavy      the same window after `import torch, transformers, peft` first: what the import rules save,
  interpreter    `python -c pass`, the floor no app start goes below.
Prints JSON: median, min, max of each, the heavy modules each app start had loaded, the library versions and
the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
from bench_stats import spread  # noqa: E402

APP = "from grpo_studio.gui.app import main; raise SystemExit(main([]))"
HEAVY_FIRST = "import torch, transformers, peft\n" + APP
LIBRARIES = ("PySide6", "PySide6-Essentials", "pyqtgraph", "psutil", "torch", "transformers", "peft")


def load_average() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def library_versions() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:  # PySide6 is often installed as PySide6-Essentials alone
            pass
    return versions


def start_window(code: str, folder: Path, attempt: str) -> dict:
    """One fresh app process, timed from here: spawn -> the probe's line (printed once the window is shown)
    and spawn -> exit. (The app's own figure, psutil's create_time, rests on the boot time in whole seconds,
    so it can be up to a second off; the spawn is timed here instead.)"""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GRPO_STUDIO_STARTUP_PROBE": "1",
           "GRPO_STUDIO_SETTINGS": str(folder / f"settings-{attempt}.ini"), "HF_HUB_OFFLINE": "1",
           "GRPO_STUDIO_RUNS_DIR": str(folder / "runs"), "GRPO_STUDIO_GPU": "none",
           "GRPO_STUDIO_INSTANCE": f"grpo-studio-bench-{os.getpid()}-{attempt}"}
    stderr_path = folder / f"stderr-{attempt}.txt"  # a file, so a chatty stderr never blocks the app
    with open(stderr_path, "w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-P", "-c", code], env=env, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
        probe, to_window = None, None
        for line in process.stdout:
            if line.startswith("{"):
                to_window = time.perf_counter() - start
                probe = json.loads(line)
                break
        process.communicate(timeout=300)
        wall = time.perf_counter() - start
    if process.returncode != 0 or probe is None:
        errors = stderr_path.read_text()[-2000:]
        raise RuntimeError(f"the app exited with {process.returncode} before its window: {errors}")
    if not probe["visible"]:
        raise RuntimeError("the main window was not visible")
    return {"to_window_s": to_window, "process_s": wall, "heavy_modules": probe["heavy_modules"]}


def interpreter_start() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-P", "-c", "pass"], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    load_before = load_average()
    runs: dict[str, list[dict]] = {"app": [], "app_heavy": []}
    interpreter = []
    with tempfile.TemporaryDirectory(prefix="bench-gui-startup-") as folder:
        for repeat in range(args.repeats):
            runs["app"].append(start_window(APP, Path(folder), f"app{repeat}"))
            runs["app_heavy"].append(start_window(HEAVY_FIRST, Path(folder), f"heavy{repeat}"))
            interpreter.append(interpreter_start())
    figures = {name: {"to_window_s": spread([r["to_window_s"] for r in results]),
                      "process_s": spread([r["process_s"] for r in results]),
                      "heavy_modules": sorted({m for r in results for m in r["heavy_modules"]})}
               for name, results in runs.items()}
    app, heavy = (figures[name]["to_window_s"]["median"] for name in ("app", "app_heavy"))
    result = {"benchmark": "gui_startup", "python": platform.python_version(), "platform": platform.platform(),
              "cpus": os.cpu_count(), "libraries": library_versions(), "repeats": args.repeats, **figures,
              "interpreter_start_s": spread(interpreter),
              "heavy_imports_cost_s": heavy - app, "app_vs_heavy_ratio": app / heavy,
              "load_average_before": load_before, "load_average_after": load_average()}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
