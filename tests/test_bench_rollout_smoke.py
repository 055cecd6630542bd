"""The rollout benchmark runs end to end at tiny sizes and reports what it promises."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent / "benchmarks" / "bench_rollout.py"


def test_bench_rollout_smoke(tmp_path):
    proc = subprocess.run([sys.executable, "-P", str(BENCH), "--tiny", "--sizes", "demo,20m", "--repeats", "2",
                           "--4bit", "--step"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert {"torch", "transformers", "peft"} <= result["versions"].keys() and result["threads"] == 1
    for size in ("demo", "20m", "20m_4bit"):
        r = result["rollouts"][size]
        names = [k for k in r if isinstance(r[k], dict) and "tokens_per_s" in r[k]]
        assert "hf" in names and len(names) >= 2
        for name in names:
            assert len(r[name]["tokens_per_s"]["all"]) == 2 and r[name]["tokens_per_s"]["min"] > 0
        assert set(r["speedup_vs_hf"]) == set(names) - {"hf"}
    assert "merged" in result["rollouts"]["20m_4bit"]["fast_merged"]["generation"]
    assert "unmerged" in result["rollouts"]["20m_4bit"]["fast_adapter"]["generation"]
    step = result["step"]
    assert len(step["hf"]["step_s"]["all"]) == 2 and step["fast_over_hf"] > 0
    assert isinstance(result["meets_goal"], bool)
