"""Smoke test of tests/benchmarks/bench_gui_startup.py at one repeat: the app's window shows without torch & co.,
and the baseline with the heavy imports forced first does report them (so the probe would see a leak)."""
import json
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_gui_startup.py"


@pytest.mark.slow  # three fresh processes, one of them imports torch, transformers and peft
def test_one_repeat_reports_the_app_the_heavy_baseline_and_the_interpreter(capsys):
    result = load_script(BENCH).main(["--repeats", "1"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["app"]["heavy_modules"] == []
    assert {"torch", "transformers", "peft"} <= set(result["app_heavy"]["heavy_modules"])
    for name in ("app", "app_heavy"):
        assert len(result[name]["to_window_s"]["all"]) == 1 and result[name]["to_window_s"]["median"] > 0
        assert result[name]["process_s"]["median"] > result[name]["to_window_s"]["median"]
    assert result["interpreter_start_s"]["median"] > 0
    libraries = result["libraries"]
    assert (libraries.get("PySide6") or libraries.get("PySide6-Essentials")) and libraries["torch"]
