"""Smoke test of tests/benchmarks/bench_dynamic_sampling.py at tiny sizes: it runs, prints JSON, and the
contenders differ only in dynamic sampling."""
import json
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_dynamic_sampling.py"


@pytest.mark.slow  # three trainer set-ups (the split probe and both contenders)
def test_bench_dynamic_sampling_runs_tiny(capsys):
    result = load_script(BENCH).main(["--seconds", "1", "--seeds", "1", "--probe-generations", "4",
                                      "--hard-max-correct", "1", "--eval-generations", "2"])
    assert json.loads(capsys.readouterr().out) == result
    assert 0 < result["hard_split_prompts"] < 100  # a real subset of the demo's 100 prompts
    dynamic, plain = result["contenders"]["dynamic_sampling"], result["contenders"]["plain"]
    for contender in (dynamic, plain):
        (run,) = contender["runs"]
        assert run["steps"] >= 1 and 0 <= run["final_reward"] <= 1
        assert contender["final_reward_min"] <= contender["final_reward_median"] <= contender["final_reward_max"]
    assert plain["runs"][0]["extra_generation_rounds"] == 0
    assert set(result["versions"]) == {"python", "torch", "transformers"}
