"""Smoke test of tests/benchmarks/bench_gguf_vs_llamacpp.py: it says why it skips, and compares when it can."""
import json
import os
from pathlib import Path

import pytest

from script_module import load_script

BENCH = Path(__file__).parent / "benchmarks" / "bench_gguf_vs_llamacpp.py"


def load_bench():
    return load_script(BENCH)


def test_skips_with_a_reason_without_llama_cpp(tmp_path, capsys):
    result = load_bench().main(["--llama-cpp-dir", str(tmp_path)])
    assert json.loads(capsys.readouterr().out) == result
    assert result["status"] == "skipped" and "convert_lora_to_gguf.py not found" in result["reason"]


@pytest.mark.skipif(not load_bench().find_script(os.environ.get("LLAMA_CPP_DIR")),
                    reason="set LLAMA_CPP_DIR to a llama.cpp checkout (or unpacked llama-cpp-python sdist)")
def test_matches_llama_cpp_tensor_by_tensor(capsys):
    result = load_bench().main(["--arch", "llama", "--hidden", "32", "--rank", "4", "--outtype", "f32"])
    assert result["status"] == "compared", result.get("reason")
    assert result["names_match"] and result["shapes_match"] and result["types_match"]
    assert result["identical_values"] and result["metadata_match"]
