"""The GPU suite's --smoke mode (every part at tiny sizes on the CPU) runs and reports honestly, so the suite
cannot rot between the rare runs on a lent GPU; a part that overruns its budget or fails spares the others."""
import json
import time
from pathlib import Path

import pytest

from script_module import load_script

SUITE = Path(__file__).parent / "benchmarks" / "gpu_suite.py"


@pytest.fixture(scope="module")
def suite():
    return load_script(SUITE)


@pytest.mark.slow  # loads and trains a tiny model in five parts (~30-60 s on 2 busy cores)
def test_smoke_runs_every_part_and_writes_json_and_table(suite, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the smoke run checks the CPU path; on a GPU run the full suite")
    report = suite.main(["--smoke", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "gpu_suite-smoke.json").read_text())["parts"].keys() == report["parts"].keys()
    table = (tmp_path / "gpu_suite-smoke.md").read_text()
    parts = report["parts"]
    assert [parts[k]["part"] for k in suite.ORDER] == [2, 5, 3, 4, 1, 6]
    assert {k: p["status"] for k, p in parts.items()} == {
        "loss": "ok", "grpo": "ok", "offload": "ok", "long": "ok", "rollout": "ok", "oom": "skipped"}, \
        {k: p.get("reason") for k, p in parts.items()}
    assert "CUDA" in parts["oom"]["reason"]  # skipped with its reason, never faked
    env = report["environment"]
    assert env["versions"]["torch"] and env["versions"]["transformers"] and env["gpu"]["name"] is None

    loss = parts["loss"]["result"]["contenders"]
    assert "CUDA" in loss["triton"]["skipped"]
    for name in ("chunked_torch", "naive", "liger"):
        assert loss[name]["time"]["n"] == 3 and loss[name]["max_abs_diff_grad_h"] < 1e-5, name
        assert loss[name]["peak_extra_memory"]["median"] is None  # no CUDA memory to measure on the CPU
    assert loss["chunked_torch"]["run_to_run_max_abs_diff_grad_h"] == 0.0  # deterministic on the CPU
    assert parts["loss"]["result"]["ratios"]["chunked_torch_vs_naive"]["time"] > 0

    grpo = parts["grpo"]["result"]
    assert grpo["full_length"] and [x["mean"] for x in grpo["completion_length"]] == [8, 8, 8]
    assert grpo["measured"]["torch_max_reserved"] is None and grpo["ratios"]["estimate_vs_torch_reserved"] is None
    assert grpo["estimate"]["total"] > 0

    offload = parts["offload"]["result"]
    assert offload["offload_active"] == {"off": False, "on": True}
    assert offload["ratios"]["step_time_on_vs_off"] > 0 and offload["vram_saved_bytes"] is None
    assert all(r["reward_std"] > 0 for runs in offload["runs"].values() for r in runs)  # real gradients
    assert [p["completion_tokens"] for p in parts["long"]["result"]["points"]] == [8, 16]
    rollout = parts["rollout"]["result"]["contenders"]
    assert rollout["engine"]["completion_tokens"][0] == rollout["plain_hf_generate"]["completion_tokens"][0] == 64
    assert "| 6 out of memory for real | skipped |" in table and "| 2 " in table


def test_a_part_over_its_budget_or_failing_spares_the_others(suite, monkeypatch, tmp_path):
    def slow(workdir, smoke, deadline):
        time.sleep(30)

    def broken(workdir, smoke, deadline):
        raise ValueError("kaboom")

    monkeypatch.setitem(suite.PARTS, "loss", (1, "slow part", slow, 0.3, 0.3))
    monkeypatch.setitem(suite.PARTS, "grpo", (2, "broken part", broken, 5, 5))
    started = time.monotonic()
    report = suite.main(["--smoke", "--out", str(tmp_path), "--parts", "loss,grpo,oom"])
    assert time.monotonic() - started < 20
    parts = report["parts"]
    assert parts["loss"]["status"] == "timed_out" and parts["grpo"]["status"] == "failed"
    assert "kaboom" in parts["grpo"]["reason"] and parts["oom"]["status"] in ("skipped", "ok", "failed")
