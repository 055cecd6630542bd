"""Smoke test of tests/benchmarks/bench_estimate_startup.py: it runs, imports nothing heavy, and its JSON holds."""
import json
from pathlib import Path

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_estimate_startup.py"


def test_estimate_startup_benchmark_runs(capsys):
    result = load_script(BENCH).main(["--repeats", "2"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["heavy_modules_imported"] == []
    for figure in ("import_and_estimate_s", "interpreter_start_s"):
        values = result[figure]["all"]
        assert len(values) == 2 and result[figure]["min"] <= result[figure]["median"] <= result[figure]["max"]
    assert result["meets_goal"] == (result["import_and_estimate_s"]["median"] < result["goal_s"])
