"""Smoke test of the CPU data-parallel benchmark at a tiny size."""
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))

import bench_distributed  # noqa: E402


@pytest.mark.slow  # two engine starts, two of them under torchrun
def test_both_contenders_run_and_report(tmp_path, capsys):
    result = bench_distributed.main(["--steps", "5", "--repeats", "1", "--prompts-per-step", "4",
                                     "--warmup", "1", "--work-dir", str(tmp_path)])
    assert set(result["contenders"]) == {"2 ranks x 1 thread", "1 rank x 2 threads"}
    for figures in result["contenders"].values():
        assert len(figures["s_per_step"]["runs"]) == 1
        assert all(math.isfinite(v) and v > 0 for v in figures["s_per_step"]["runs"])
    assert (tmp_path / "2x1-0" / "adapter" / "adapter_model.safetensors").is_file()
    assert '"benchmark": "distributed_cpu"' in capsys.readouterr().out
