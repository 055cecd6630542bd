"""The TRL comparison benchmark runs end to end at a tiny size and reports what it promises; its large-size
model builder makes a consistent model + tokenizer + task without downloads."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_vs_trl.py"


def _bench_module():
    return load_script(BENCH)


def test_bench_vs_trl_smoke():
    pytest.importorskip("trl")
    proc = subprocess.run([sys.executable, str(BENCH), "--steps", "4", "--warmup", "1"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["settings"]["size"] == "demo" and result["settings"]["num_generations"] == 8
    for side in ("engine", "trl"):
        r = result[side]
        assert r["steps_timed"] == 2 and r["mean_step_s"] > 0
        assert r["peak_rss"] > 100 * 2**20
        assert 100 * 2**20 < r["baseline_rss"] <= r["peak_rss"] and r["train_peak_rss"] <= r["peak_rss"]
        assert r["peak_above_baseline"] == r["train_peak_rss"] - r["baseline_rss"]
        assert r["reward_first"] is not None and r["loss_last"] == r["loss_last"]  # rewards scored, loss not NaN
    assert set(result["ratios"]) == {"step_time", "peak_rss", "peak_above_baseline"}
    assert result["ratios"]["step_time"] > 0 and result["ratios"]["peak_rss"] > 0
    assert set(result["meets_goal"]) == {"step_time", "peak_rss"}


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
