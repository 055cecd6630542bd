"""Smoke test of tests/benchmarks/bench_download.py at tiny sizes: it runs, prints JSON, both contenders
fetch every byte, and the figures are consistent."""
import json
from pathlib import Path

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_download.py"


def test_bench_download_runs_tiny(capsys, monkeypatch, tmp_path):
    from huggingface_hub import constants

    for name in ("ENDPOINT", "HUGGINGFACE_CO_URL_TEMPLATE", "HF_HUB_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.setattr(constants, name, getattr(constants, name))  # the benchmark changes them; undo after
    for name in ("HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, str(tmp_path / name))
    result = load_script(BENCH).main(["--shards", "2", "--shard-mib", "0.25", "--repeats", "3"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["repo_bytes"] > 2 * 2**18 and result["files"] == 5
    for figures in result["contenders"].values():
        assert len(figures["seconds"]) == 3 and figures["min_s"] <= figures["median_s"] <= figures["max_s"]
        assert figures["median_mib_per_s"] > 0
    assert result["ratio_time_grpo_studio_vs_plain"] > 0 and result["versions"]["huggingface_hub"]
