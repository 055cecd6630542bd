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
    assert result["layer_input_bytes_all_layers"] == 2 * layer_bytes
    assert result["modes"]["plain"]["device_saved_bytes_peak"] == 2 * layer_bytes
    assert result["modes"]["offload"]["device_saved_bytes_peak"] == 0
    assert result["modes"]["offload"]["offloaded_peak"] == 2 * layer_bytes
    assert result["ratios"]["device_saved_bytes_offload_vs_plain"] == 0.0
    assert result["ratios"]["step_time_offload_vs_plain"] > 0
    assert result["pinned_allocations"] == 2  # warm after the first step: no new buffers per step
    assert all(len(m["step_s"]) == 2 for m in result["modes"].values())
