"""Benchmark: how long a fresh process takes to import the VRAM estimator and make one estimate (the GUI asks
it on every edit of the New-run form; the goal is well under 100 ms on top of the interpreter's start).

    python tests/benchmarks/bench_estimate_startup.py [--repeats 7]

Each repeat is a fresh interpreter that times, inside itself, `import engine.config + engine.estimate` and one
`estimate_run` for Llama-3.1-8B on an 8 GB card, and reports which heavy modules got imported (none should).
The interpreter's own start-up is timed apart (`python -c pass`), alternating with the estimate runs.
Prints JSON: median, min and max of both, and the Python version.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also under PYTHONSAFEPATH
from bench_stats import spread  # noqa: E402

GOAL_S = 0.1
HEAVY = ("torch", "transformers", "huggingface_hub", "PySide6")
CODE = f"""
import sys, time
start = time.perf_counter()
from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.estimate import estimate_run
result = estimate_run(TrainConfig(model="meta-llama/Llama-3.1-8B"), gpu={{"name": "g", "total": 8 << 30,
                      "free": 8 << 30}})
elapsed = time.perf_counter() - start
assert result["verdict"] == "too_big" and result["suggestions"]
print(elapsed, ",".join(m for m in {HEAVY!r} if m in sys.modules))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    estimate, interpreter, heavy = [], [], set()
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-P", "-c", CODE], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        estimate.append(float(out[0]))
        heavy.update(out[1].split(",") if len(out) > 1 else [])
        start = time.perf_counter()
        subprocess.run([sys.executable, "-P", "-c", "pass"], check=True, env=env)
        interpreter.append(time.perf_counter() - start)
    median = statistics.median(estimate)
    result = {"benchmark": "estimate_startup", "python": platform.python_version(), "cpus": os.cpu_count(),
              "repeats": args.repeats, "import_and_estimate_s": spread(estimate),
              "interpreter_start_s": spread(interpreter), "heavy_modules_imported": sorted(heavy),
              "goal_s": GOAL_S, "meets_goal": median < GOAL_S}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
