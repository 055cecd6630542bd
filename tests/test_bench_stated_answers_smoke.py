"""Smoke test of tests/benchmarks/bench_stated_answers.py with one other reference per reference: it runs,
prints JSON, and the rates it prints are the ones the cases give."""
import json
from pathlib import Path

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_stated_answers.py"


def test_bench_stated_answers_runs_small(capsys):
    assert load_script(BENCH).main(["--others", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["positives"] >= 500 and result["negatives"] == result["positives"]  # 1 other x every template
    assert result["hit_rate"] == 1.0 and result["missed"] == []
    assert result["false_positive_rate"] == len(result["false_positives"]) / result["negatives"] <= 0.01
