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
    assert [parts[k]["part"] for k in suite.ORDER] == [2, 5, 8, 3, 4, 1, 6, 7]
    assert {k: p["status"] for k, p in parts.items()} == {
        "loss": "ok", "grpo": "ok", "offload": "ok", "long": "ok", "rollout": "ok", "oom": "skipped",
        "compile": "ok", "mismatch": "ok"}, \
        {k: p.get("reason") for k, p in parts.items()}
    assert "CUDA" in parts["oom"]["reason"]  # skipped with its reason, never faked
    compiled = parts["compile"]["result"]  # the fp32 gradient kernel for sm_86, cross-compiled on the CPU
    assert compiled["compiled"] == 6 and compiled["engine_picks_unlaunchable"] == 0
    assert compiled["rows_differing_from_committed_table"] == 0 and "launched_on_this_card" not in compiled
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
    assert grpo["steps_completed"] == 3
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
    sampling = parts["mismatch"]["result"]["sampling"]  # fp32 training: bf16 sampling measured, fp32 not
    assert sampling["float32"]["sampler_kl"] is None and sampling["float32"]["steps"] == 2
    bf16 = sampling["bfloat16"]
    assert bf16["steps"] == 2 and bf16["sampler_kl"]["n"] == 2 and 0 < bf16["sampler_kl"]["median"] < 1
    assert 0 <= bf16["sampler_capped"]["median"] <= 1 and "sampling in bfloat16: KL per token" in table


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


def test_nvidia_smi_readers_parse_what_the_driver_prints(suite, monkeypatch, tmp_path):
    import os

    from suite_parts import common

    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\ncase "$1" in\n'
                    f'  --query-compute-apps=*) echo "{os.getpid()}, 1536"; echo "999999, 80" ;;\n'
                    '  --query-gpu=memory.used) echo "2048" ;;\n'
                    '  --query-gpu=driver_version) echo "565.57.01" ;;\nesac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ["PATH"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert common.process_used(os.getpid()) == 1536 << 20 and common.process_used(12345) is None
    assert common.device_used() == 2048 << 20
    with common.NvidiaSmiPeak(interval_s=0.01) as smi:
        time.sleep(0.2)
    assert smi.summary() == {"process_peak": 1536 << 20, "device_peak": 2048 << 20, "device_at_start": 2048 << 20}


def test_the_table_formats_full_size_results(suite):
    """The GPU-only branches of the table (numbers where the smoke run has None, an OOM point) format."""
    gib = 2**30
    step = {"seconds": 2.0, "peak_allocated": 9 * gib, "peak_reserved": 10 * gib, "nvidia_smi_process_peak": 11 * gib}
    mode = {"step_s": {"median": 2.0}, "peak_allocated": {"median": 9 * gib}, "peak_reserved": {"median": 10 * gib}}
    contender = {"time": {"median": 0.5}, "peak_extra_memory": {"median": gib}, "max_abs_diff_loss": 1e-4,
                 "max_abs_diff_grad_h": 1e-6, "run_to_run_max_abs_diff_grad_h": 0.0}
    parts = {
        "loss": {"contenders": {"triton": contender, "naive": {"skipped": "out of GPU memory at this size: x"}},
                 "ratios": {"triton_vs_naive": {"time": 0.5, "peak_extra_memory": 0.04}}},
        "grpo": {"measured": {"torch_max_reserved": 3 * gib, "nvidia_smi": {"process_peak": 3.5 * gib}},
                 "estimate": {"total": 3.6 * gib}, "full_length": True,
                 "ratios": {"estimate_vs_torch_reserved": 1.2, "estimate_vs_nvidia_smi": 1.03}},
        "offload": {"modes": {"on": mode, "off": mode}, "vram_saved_bytes": gib,
                    "estimated_activation_saving_bytes": gib,
                    "ratios": {"step_time_on_vs_off": 1.01, "vram_saved_vs_estimated_activation_saving": 1.0}},
        "long": {"points": [{"completion_tokens": 1024, **step, "estimate": {"training_phase_peak": 12 * gib},
                             "estimate_vs_reserved": 1.2},
                            {"completion_tokens": 2048, "oom": "CUDA out of memory",
                             "estimate": {"training_phase_peak": gib}}],
                 "longest_fitting_completion_tokens": 1024, "stopped": "2048 tokens: out of memory"},
        "rollout": {"contenders": {"engine": {"tokens_per_s": {"median": 900.0}},
                                   "plain_hf_generate": {"tokens_per_s": {"median": 300.0}}},
                    "ratios": {"engine_vs_plain_hf": 3.0}},
        "oom": {"checks": {"exit_code_is_oom": True, "gpu_memory_back": False}},
    }
    environment = {"date": "d", "cuda": "12.8", "gpu": {"name": "NVIDIA H200", "driver": "5"},
                   "versions": {k: "1" for k in suite.LIBRARIES}}
    report = {"smoke": False, "environment": environment,
              "parts": {k: {"part": suite.PARTS[k][0], "title": suite.PARTS[k][1], "status": "ok", "result": r}
                        for k, r in parts.items()}}
    table = suite.markdown(report)
    assert "NVIDIA H200, driver 5, CUDA 12.8" in table and "| 4 Llama-3.1-8B longest completion | 2048 tokens" in table
    assert "3.00 GiB" in table and "OOM" in table and "FAIL" in table and "3x" in table
    assert all(line.count("|") == 7 for line in table.splitlines() if line.startswith("|"))
