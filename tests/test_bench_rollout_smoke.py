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


def test_bench_rollout_real_model_path(tmp_path):
    """--model real with a chat model folder (a tiny one standing in for SmolLM2-135M): chat prompts, the
    real model's goal, and where the model came from."""
    from tiny_models import build_model

    build_model(tmp_path / "model", arch="llama", hidden_size=32, layers=2)
    proc = subprocess.run([sys.executable, "-P", str(BENCH), "--model", "real", "--model-path",
                           str(tmp_path / "model"), "--repeats", "2"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    real = result["rollouts"]["real"]
    assert list(result["rollouts"]) == ["real"] and str(tmp_path / "model") in real["model"]
    assert real["prompts"] == 4 and real["hf"]["tokens_per_s"]["min"] > 0 and "fast" in real["speedup_vs_hf"]
    assert result["goal"]["rollout_speedup_real_model"] == 2.5
    assert result["meets_goal"] == (real["speedup_vs_hf"]["fast"] >= 2.5
                                    and real["speedup_vs_hf"]["fast"] >= 2.0)
