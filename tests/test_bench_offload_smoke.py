"""Smoke test of tests/benchmarks/bench_offload.py at tiny sizes: it runs, prints JSON, and its numbers hold."""
import json
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_offload.py"


def load_bench():
    return load_script(BENCH)


@pytest.mark.parametrize("four_bit", [False, True])
def test_bench_offload_runs_tiny(capsys, four_bit):
    tiny = ["--hidden", "64", "--layers", "2", "--vocab", "128", "--batch", "2", "--seq", "16",
            "--steps", "2", "--warmup", "1", "--lora-r", "4"] + (["--load-in-4bit"] if four_bit else [])
    result = load_bench().main(tiny)
    assert json.loads(capsys.readouterr().out) == result
    layer_bytes = 2 * 16 * 64 * 4
    plain, offload = result["modes"]["plain"], result["modes"]["offload"]
    assert result["layer_input_bytes_all_layers"] == 2 * layer_bytes
    assert plain["wrapper_counted_device_bytes_peak"] == 2 * layer_bytes
    assert offload["wrapper_counted_device_bytes_peak"] == 0
    assert offload["wrapper_counted_offloaded_peak"] == 2 * layer_bytes
    assert result["ratios"]["wrapper_counted_device_bytes_offload_vs_plain"] == 0.0
    # On CPU the copy stays in the same RAM, and the time ratio is named for what it measures
    assert "same RAM" in result["offload_target"]
    assert "step_time_offload_vs_plain" not in result["ratios"]
    ratio = result["ratios"]["step_time_cpu_copy_path_vs_plain"]
    assert ratio == pytest.approx(offload["step_s_median"] / plain["step_s_median"])
    per_round = result["ratios"]["step_time_cpu_copy_path_vs_plain_per_round"]
    assert per_round["min"] <= per_round["max"]
    for mode in (plain, offload):
        assert mode["step_s_min"] <= mode["step_s_median"] <= mode["step_s_max"]
        # measured, not counted: a real process of torch + a model holds well over 50 MB
        assert mode["rss_peak"] > 50 * 2**20
    assert result["ratios"]["rss_peak_offload_vs_plain"] == pytest.approx(offload["rss_peak"] / plain["rss_peak"])
    assert result["pinned_allocations"] == 2  # warm after the first step: no new buffers per step
    assert all(len(m["step_s"]) == 2 for m in result["modes"].values())
