"""The GRPO loss benchmark runs end to end at small sizes, checks that every variant agrees on the loss, and
its JSON carries the figures the full run is judged by: median and spread, memory, thread counts, labels."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_grpo_loss.py"
B, T, V = 2, 64, 4096  # the naive path's [B, T, V] fp32 logits: 2 MiB, well above the noise of RSS
CHUNK = 8  # ours: [8, V] fp32 logits at a time, 128 KiB


def test_benchmark_smoke_runs_all_variants_and_reports_ratios():
    # Liger eager here: compiling it costs ~1 min (the full benchmark compiles and warms up by default)
    cmd = [sys.executable, str(BENCH), "--batch", str(B), "--length", str(T), "--hidden", "16", "--vocab", str(V),
           "--rounds", "1", "--repeats", "2", "--chunk-size", str(CHUNK), "--liger-uncompiled"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    variants = report["variants"]
    assert set(variants) == {"naive", "liger", "ours"} and report["losses_agree"] is True
    for name, result in variants.items():
        assert "error" not in result, f"{name}: {result}"
        seconds = result["seconds"]
        assert len(seconds["all"]) == 2 and len(result["warmup_seconds"]["all"]) == 1
        assert seconds["min"] <= seconds["median"] <= seconds["max"]
        assert result["threads"]["intra_op"] == 1 and result["threads"]["OMP_NUM_THREADS"] == "1"
        assert len(result["losses"]) == 1
    assert variants["liger"]["compiled"] is False and "uncompiled" in variants["liger"]["label"]
    logits_mb = B * T * V * 4 / 2**20
    assert variants["naive"]["peak_extra_mb"]["median"] >= logits_mb  # naive really builds the logits
    assert variants["ours"]["peak_extra_mb"]["median"] < logits_mb  # ours never does
    naive_ratio = report["ratios"]["ours_vs_naive"]
    assert naive_ratio["time"] == pytest.approx(variants["ours"]["seconds"]["median"] /
                                                variants["naive"]["seconds"]["median"])
    assert naive_ratio["peak_extra_memory"] < 1


def test_disagreeing_losses_are_caught():
    bench = load_script(BENCH)
    agreeing = {"naive": {"losses": [1.0, 1.00001]}, "ours": {"losses": [1.00002]}, "liger": {"error": ["x"]}}
    assert bench.losses_agree(agreeing, "float32")[0] is True
    disagreeing = {"naive": {"losses": [1.0]}, "ours": {"losses": [1.01]}}
    ok, gap = bench.losses_agree(disagreeing, "float32")
    assert ok is False and gap == pytest.approx(0.01)
    assert bench.losses_agree({"ours": {"error": ["failed"]}}, "float32")[0] is False
