"""The GRPO loss benchmark runs end to end at tiny sizes, every variant agrees on the loss, and the JSON
carries the figures the full run is judged by."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_grpo_loss.py"


def test_benchmark_smoke_runs_all_variants_and_reports_ratios():
    cmd = [sys.executable, str(BENCH), "--batch", "2", "--length", "12", "--hidden", "16", "--vocab", "50",
           "--repeats", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    variants = report["variants"]
    assert set(variants) == {"naive", "liger", "ours"}
    for name, result in variants.items():
        assert "error" not in result, f"{name}: {result}"
        assert result["seconds"] > 0 and result["peak_extra_mb"] >= 0
    losses = [v["loss"] for v in variants.values()]
    assert max(losses) - min(losses) < 1e-4, f"variants disagree on the loss: {losses}"
    for base in ("naive", "liger"):
        ratios = report["ratios"][f"ours_vs_{base}"]
        assert ratios["time"] > 0 and ratios["peak_extra_memory"] >= 0
