"""GGUF in: a .gguf model file is dequantized once into a cached HF folder (keyed by its hash) that trains like
any other model; unreadable files fail early with a message that says what would work."""
import hashlib
import json
from pathlib import Path

import pytest

from gguf_files import llama_cpp_token_cases, vocab_available, write_llama_gguf
from grpo_studio.engine.common import gguf_cache
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.sources import local_model_folder

pytestmark = pytest.mark.skipif(not vocab_available(), reason="llama.cpp's vocab files (LLAMA_CPP_DIR) are missing")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny.Q8_0.gguf")


def recorder():
    events = []
    return events, lambda kind, **fields: events.append({"type": kind, **fields}) or events[-1]


def test_conversion_keeps_the_weights_and_llama_cpps_tokenizer(tiny_gguf, hf_cache):
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from grpo_studio.engine.hub.gguf_import import ensure_converted

    events, emit = recorder()
    folder = ensure_converted(tiny_gguf, emit)
    assert folder.parent == hf_cache.parent / "grpo-studio-gguf"
    source = json.loads((folder / "gguf_source.json").read_text())
    assert source["sha256"] == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert source["architecture"] == "llama" and source["quant_types"] == ["F32", "Q8_0"]
    stages = [e["stage"] for e in events if e["type"] == "phase"]
    assert stages == ["hashing", "checking", "dequantizing", "saving"]

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    assert model.config.num_hidden_layers == 2 and model.config.tie_word_embeddings
    reader = gguf.GGUFReader(str(tiny_gguf))
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    expected = torch.from_numpy(gguf.quants.dequantize(embd.data, embd.tensor_type).copy())
    assert torch.equal(model.get_input_embeddings().weight, expected)  # Q8_0 dequantized exactly, no drift
    direct = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name,
                                                  dtype=torch.float32)
    ids = torch.tensor([[1, 15043, 3186, 29991]])
    assert torch.equal(model(ids).logits, direct(ids).logits)  # attention weights un-permuted like transformers'

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    cases = llama_cpp_token_cases()
    assert len(cases) >= 8
    for text, ids in cases:  # the token ids llama.cpp itself produces for this vocab
        assert tokenizer(text, add_special_tokens=False).input_ids == ids, text


def test_second_use_is_a_cache_hit_by_hash_whatever_the_name(tiny_gguf, hf_cache, tmp_path):
    from grpo_studio.engine.hub.gguf_import import ensure_converted

    with pytest.raises(ConfigError, match="has not been dequantized yet"):
        local_model_folder(str(tiny_gguf))
    first = ensure_converted(tiny_gguf)
    assert local_model_folder(str(tiny_gguf)) == first
    copy = tmp_path / "renamed.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    events, emit = recorder()
    assert ensure_converted(copy, emit) == first
    assert "dequantizing" not in [e.get("stage") for e in events]
    other = write_llama_gguf(tmp_path / "other.gguf", seed=1)  # different weights: a different folder
    assert ensure_converted(other) != first


def test_unsupported_architecture_is_refused_before_loading(hf_cache, tmp_path):
    from grpo_studio.engine.hub.gguf_import import ensure_converted

    path = write_llama_gguf(tmp_path / "odd.gguf", architecture="rwkv7")
    with pytest.raises(ConfigError, match="'rwkv7' model, an architecture transformers cannot read") as info:
        ensure_converted(path)
    assert "safetensors" in info.value.hint
    assert not any(gguf_cache.cache_root().glob("*/config.json"))


def test_quant_type_the_gguf_library_cannot_dequantize_is_named(hf_cache, tmp_path):
    from grpo_studio.engine.hub.gguf_import import ensure_converted

    path = write_llama_gguf(tmp_path / "k8.gguf", matrix_type="Q8_K")
    with pytest.raises(ConfigError, match="tensors of type Q8_K") as info:
        ensure_converted(path)
    assert "Q4_1" in info.value.hint


def test_not_a_gguf_file_is_a_clear_error(hf_cache, tmp_path):
    from grpo_studio.engine.hub.gguf_import import ensure_converted

    path = tmp_path / "broken.gguf"
    path.write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(ConfigError, match="not a readable GGUF file"):
        ensure_converted(path)


def test_a_run_trains_from_a_gguf_file_and_its_export_names_that_file(tiny_gguf, hf_cache, tmp_path, capsys):
    from grpo_studio.engine.common.events import read_events
    from grpo_studio.engine.common.runs import RunPaths
    from grpo_studio.engine.run.runner import run_engine
    from test_checkpoint_resume import small_config
    from test_events_schema import event_problems

    config = small_config(steps=1)
    config.model = str(tiny_gguf)
    run = tmp_path / "run"
    assert run_engine(config, run, quiet=True) == 0
    events = list(read_events(RunPaths(run).events))
    assert all(event_problems(e) == [] for e in events)
    kinds = [(e["type"], e.get("phase")) for e in events]
    assert kinds.index(("phase", "converting_gguf")) < kinds.index(("phase", "loading_model"))
    sha = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert any(e["type"] == "log" and sha[:16] in e["message"] for e in events)  # the run records its GGUF
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_gguf.resolve())
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "finished"

    # the exported adapter applies to the very GGUF the run trained from: the Modelfile names it, unasked
    from test_chat import cli_json

    code, lines = cli_json(capsys, "export", run, "--gguf", tmp_path / "adapter.gguf")
    assert code == 0, lines
    kinds = {f["kind"]: f["path"] for f in lines[-1]["files"]}
    assert f"FROM {tiny_gguf.resolve()}" in Path(kinds["modelfile"]).read_text()
    assert lines[-1]["ollama_command"].endswith(kinds["modelfile"])


def test_the_estimate_reads_a_gguf_models_shape_from_its_header(tiny_gguf, hf_cache):
    from grpo_studio.engine.common.model_configs import load_model_config

    config = load_model_config(str(tiny_gguf))
    assert config["source"] == "gguf" and config["model_type"] == "llama"
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]) == (2, 64, 128)
    assert config["vocab_size"] == 32000 and config["tie_word_embeddings"] and config["num_key_value_heads"] == 4


def test_try_compares_base_and_tuned_on_a_gguf_model(tiny_gguf, hf_cache, tmp_path, capsys):
    from grpo_studio.engine.run.runner import run_engine
    from test_chat import answers, cli_json
    from test_checkpoint_resume import small_config

    config = small_config(steps=1)
    config.model = str(tiny_gguf)
    run = tmp_path / "run"
    assert run_engine(config, run, quiet=True) == 0
    code, lines = cli_json(capsys, "chat", run, "--prompt", "3+5=", "--max-new-tokens", 4)
    assert code == 0 and set(answers(lines)) == {"base", "tuned"}, lines


def test_a_moved_gguf_still_names_its_converted_folder_and_a_lost_one_says_what_happened(hf_cache, tmp_path):
    """Try and export after the GGUF a run trained on was moved (an uninstalled package, a tidied folder): the
    converted copy in the cache serves; with that gone too, the error says the file moved, not 'download it'."""
    import shutil

    from grpo_studio.engine.common.errors import ExportError
    from grpo_studio.engine.export.gguf_adapter import find_base_model
    from grpo_studio.engine.hub.gguf_import import ensure_converted

    path = write_llama_gguf(tmp_path / "mine.gguf")
    folder = ensure_converted(path)
    adapter_config = {"base_model_name_or_path": str(path)}
    assert find_base_model(adapter_config).folder == folder
    path.rename(tmp_path / "moved.gguf")
    assert find_base_model(adapter_config).folder == folder
    shutil.rmtree(folder)
    with pytest.raises(ExportError, match="moved or deleted") as caught:
        find_base_model(adapter_config)
    assert "download" not in caught.value.hint
