"""The TRL comparison benchmark runs end to end at a tiny size and reports what it promises; its large-size
model builder makes a consistent model + tokenizer + task without downloads."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_vs_trl.py"


def _bench_module():
    return load_script(BENCH)


@pytest.mark.slow  # four trainer processes
def test_bench_vs_trl_smoke():
    import importlib.metadata

    pytest.importorskip("trl")
    proc = subprocess.run([sys.executable, str(BENCH), "--steps", "4", "--warmup", "1", "--repeats", "2"],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    settings = result["settings"]
    assert settings["size"] == "demo" and settings["num_generations"] == 8 and settings["repeats"] == 2
    for name in ("torch", "transformers", "peft", "trl"):
        assert result["versions"][name] == importlib.metadata.version(name)
    for side in ("engine", "trl"):
        r = result[side]
        assert len(r["runs"]) == 2 and all(run["steps_timed"] == 2 for run in r["runs"])
        for figure in ("mean_step_s", "peak_rss", "completion_length_mean"):
            values = [run[figure] for run in r["runs"]]
            assert r[figure]["all"] == values and r[figure]["min"] == min(values) and r[figure]["max"] == max(values)
            assert min(values) <= r[figure]["median"] <= max(values)
        for run in r["runs"]:
            assert 100 * 2**20 < run["baseline_rss"] <= run["peak_rss"]
            if run["hwm_reset"]:  # the high-water mark restarted at the baseline, so training's peak is above it
                assert run["baseline_rss"] <= run["train_peak_rss"] <= run["peak_rss"]
            # the demo's completions are 1..6 tokens (TRL counts the end token in its length)
            assert 1 <= run["completion_length_mean"] <= settings["max_completion_length"] + 1
            assert run["reward_first"] is not None and math.isfinite(run["loss_last"])
    assert set(result["ratios"]) == {"step_time", "peak_rss", "peak_above_baseline"}
    step = result["ratios"]["step_time"]
    assert step["min"] <= step["max"]
    expected = result["engine"]["mean_step_s"]["median"] / result["trl"]["mean_step_s"]["median"]
    assert step["median"] == pytest.approx(expected, abs=1e-3)
    assert result["meets_goal"] == {k: result["ratios"][k]["median"] <= result["goal"][k] for k in result["goal"]}


def test_large_model_builder(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    bench = _bench_module()
    spec = {**bench.LARGE, "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "layers": 1}
    params = bench.build_large_model(tmp_path, spec)
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path))
    config = AutoConfig.from_pretrained(str(tmp_path))
    assert len(tokenizer) == config.vocab_size == 1000 and config.hidden_size == 32
    assert params > 2 * 1000 * 32  # untied embeddings and head
    assert tokenizer.eos_token_id == config.eos_token_id and tokenizer.pad_token_id == config.pad_token_id
    assert (tmp_path / "task.jsonl").read_text().startswith('{"prompt"')
    assert bench.digit_share(["12ab", "", "xyz9"]) == [0.5, 0.0, 0.25]

    config = bench.bench_config(5, "large", str(tmp_path))
    assert config.model == str(tmp_path) and config.grpo.beta > 0 and config.grpo.num_generations == 8
    assert config.batch.micro_batch_size == config.batch.prompts_per_step * 8
    assert config.grpo.max_completion_length == bench.LARGE["max_completion_length"]


def test_bench_vs_trl_real_model_skips_without_model(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--model", "real", "--model-path", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == ""
    assert "skipped" in proc.stderr and "SmolLM2-135M-Instruct" in proc.stderr


@pytest.mark.slow  # two trainer processes
def test_bench_vs_trl_real_model_path(tmp_path):
    """--model real with a chat model folder (a tiny one here): chat prompts on both sides, the real goals."""
    pytest.importorskip("trl")
    from tiny_models import build_model

    build_model(tmp_path / "model", arch="llama", hidden_size=32, layers=2)
    proc = subprocess.run([sys.executable, str(BENCH), "--model", "real", "--model-path", str(tmp_path / "model"),
                           "--steps", "2", "--warmup", "1", "--repeats", "1"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["settings"]["size"] == "real" and str(tmp_path / "model") in result["settings"]["model"]
    assert result["goal"] == {"step_time": 0.5, "peak_rss": 0.6}
    for side in ("engine", "trl"):
        run = result[side]["runs"][0]
        assert run["steps_timed"] == 1 and math.isfinite(run["loss_last"])
        assert 1 <= run["completion_length_mean"] <= 33
