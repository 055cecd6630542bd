"""Run a test module as a script under Triton's interpreter (TRITON_INTERPRET=1 must be set before triton is
imported, so the Triton tests run their cases in a child process) and collect the JSON lines it prints."""
import json
import os
import subprocess
import sys
from pathlib import Path


def interpreter_run(script: Path, timeout: int) -> dict:
    """{case name: result} from the script's JSON lines (each has a "case" key)."""
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(script.parent)}
    env.pop("GRPO_STUDIO_NO_TRITON", None)
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"interpreter run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in results}
