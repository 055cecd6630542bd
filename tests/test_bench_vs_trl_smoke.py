"""The TRL comparison benchmark runs end to end at a tiny size and reports what it promises."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent / "benchmarks" / "bench_vs_trl.py"


def test_bench_vs_trl_smoke():
    pytest.importorskip("trl")
    proc = subprocess.run([sys.executable, str(BENCH), "--steps", "4", "--warmup", "1"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    for side in ("engine", "trl"):
        assert result[side]["steps_timed"] == 2 and result[side]["mean_step_s"] > 0
        assert result[side]["peak_rss"] > 100 * 2**20
    assert set(result["ratios"]) == {"step_time", "peak_rss"} and all(v > 0 for v in result["ratios"].values())
    assert set(result["meets_goal"]) == {"step_time", "peak_rss"}
