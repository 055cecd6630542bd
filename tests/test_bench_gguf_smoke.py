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


# Every architecture and every output type the README claims (f32, f16, q8_0), each architecture once so the
# test stays fast (two conversions of ~5 s each per case); the benchmark itself runs any pair.
CASES = [("llama", "f32"), ("qwen2", "f16"), ("qwen3", "q8_0"), ("mistral", "f32"), ("gemma2", "f16"),
         ("phi3", "q8_0")]


def test_cases_cover_what_the_readme_claims():
    assert {arch for arch, _ in CASES} == set(load_bench().ARCHITECTURES)
    assert {outtype for _, outtype in CASES} == {"f32", "f16", "q8_0"}


@pytest.mark.slow  # six cases of two fresh conversion processes each
@pytest.mark.skipif(not load_bench().find_script(os.environ.get("LLAMA_CPP_DIR")),
                    reason="set LLAMA_CPP_DIR to a llama.cpp checkout (or unpacked llama-cpp-python sdist)")
@pytest.mark.parametrize("arch,outtype", CASES)
def test_matches_llama_cpp_tensor_by_tensor(arch, outtype, capsys):
    result = load_bench().main(["--arch", arch, "--hidden", "32", "--rank", "4", "--outtype", outtype])
    assert result["status"] == "compared", result.get("reason")
    assert result["names_match"] and result["shapes_match"] and result["types_match"]
    assert result["identical_values"] and result["metadata_match"]
    expected_type = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[outtype]
    assert any(kind.startswith(expected_type + "/") for kind in result["types"]), result["types"]
