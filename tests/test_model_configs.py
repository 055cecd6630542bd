"""Finding a model's config.json essentials: demo, local, HF cache, offline table, errors."""
import json
from importlib import resources

import pytest

from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.estimate_model import Arch
from grpo_studio.engine.common.model_configs import (DEMO_FALLBACK, ESSENTIALS, load_model_config, normalise_name,
                                              table_lookup, table_names)

LLAMA_LIKE = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 3,
              "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}

# Published parameter counts (model cards / safetensors totals, language model only), in billions: the
# table's shapes must reproduce them through the estimator's own parameter count.
PUBLISHED_PARAMS_B = {
    "meta-llama/Llama-3.2-1B": 1.24, "meta-llama/Llama-3.2-3B": 3.21, "meta-llama/Llama-3.1-8B": 8.03,
    "meta-llama/Llama-3.1-70B": 70.6, "Qwen/Qwen2.5-0.5B": 0.49, "Qwen/Qwen2.5-1.5B": 1.54,
    "Qwen/Qwen2.5-3B": 3.09, "Qwen/Qwen2.5-7B": 7.62, "Qwen/Qwen2.5-14B": 14.7, "Qwen/Qwen2.5-32B": 32.8,
    "Qwen/Qwen3-0.6B": 0.6, "Qwen/Qwen3-1.7B": 1.7, "Qwen/Qwen3-4B": 4.0, "Qwen/Qwen3-8B": 8.2,
    "Qwen/Qwen3-14B": 14.8, "Qwen/Qwen3-32B": 32.8, "mistralai/Mistral-7B-v0.3": 7.25, "google/gemma-2-2b": 2.61,
    "google/gemma-2-9b": 9.24, "google/gemma-2-27b": 27.2, "google/gemma-3-1b-it": 1.0,
    "microsoft/Phi-3-mini-4k-instruct": 3.82, "microsoft/phi-4": 14.7, "microsoft/Phi-4-mini-instruct": 3.84,
}


def test_demo_reads_the_packaged_config_or_its_documented_shape():
    config = load_model_config("demo")
    assert config["source"] == "demo" and config["name"] == "demo"
    packaged = resources.files("grpo_studio.resources") / "demo" / "model" / "config.json"
    expected = json.loads(packaged.read_text("utf-8")) if packaged.is_file() else DEMO_FALLBACK
    assert config["hidden_size"] == expected["hidden_size"] == 64
    assert config["num_hidden_layers"] == expected["num_hidden_layers"] == 2
    assert config["vocab_size"] == expected["vocab_size"] and config["tie_word_embeddings"] is True


def test_local_folder_and_config_json_path(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_LIKE))
    for model in (str(tmp_path), str(tmp_path / "config.json")):
        config = load_model_config(model)
        assert config["source"] == "local" and set(ESSENTIALS) <= set(config)
        assert config["head_dim"] == 32 and config["num_key_value_heads"] == 2
        assert config["tie_word_embeddings"] is False


def test_gemma3_text_config_is_flattened(tmp_path):
    multimodal = {"model_type": "gemma3", "vision_config": {"hidden_size": 1152},
                  "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                                  "num_hidden_layers": 34, "num_attention_heads": 8, "num_key_value_heads": 4,
                                  "head_dim": 256, "vocab_size": 262208}}
    (tmp_path / "config.json").write_text(json.dumps(multimodal))
    config = load_model_config(str(tmp_path))
    assert (config["hidden_size"], config["num_hidden_layers"], config["head_dim"]) == (2560, 34, 256)
    assert config["model_type"] == "gemma3_text" and config["tie_word_embeddings"] is True  # Gemma ties


def test_hf_cache_is_read_from_its_folder_layout(tmp_path, monkeypatch):
    repo = tmp_path / "models--someone--tiny-llama"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(LLAMA_LIKE))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    config = load_model_config("someone/tiny-llama")
    assert config["source"] == "hf_cache" and config["hidden_size"] == 256


def test_hf_cache_wins_over_the_table(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / "rev"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(dict(LLAMA_LIKE, model_type="qwen2")))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert load_model_config("Qwen/Qwen2.5-0.5B")["source"] == "hf_cache"


@pytest.mark.parametrize("model, hidden", [
    ("Qwen/Qwen2.5-1.5B-Instruct", 1536), ("meta-llama/Llama-3.1-8B", 4096),
    ("meta-llama/Meta-Llama-3.1-8B-Instruct", 4096), ("unsloth/llama-3.1-8b-instruct-bnb-4bit", 4096),
    ("QWEN/QWEN3-4B-INSTRUCT-2507", 2560), ("mistralai/Mistral-7B-Instruct-v0.3", 4096),
    ("google/gemma-3-4b-it", 2560), ("unsloth/gemma-3-1b-it-unsloth-bnb-4bit", 1152),
    ("microsoft/Phi-3.5-mini-instruct", 3072), ("meta-llama/Llama-3.3-70B-Instruct", 8192),
])
def test_offline_table_matches_names_case_insensitively(model, hidden, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    config = load_model_config(model)
    assert config["source"] == "table" and config["hidden_size"] == hidden


def test_normalise_name_strips_org_tune_and_quantisation():
    assert normalise_name("unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit") == "qwen2.5-1.5b"
    assert normalise_name("meta-llama/Meta-Llama-3-8B-Instruct") == "llama-3-8b"
    assert normalise_name("google/gemma-2-9b-it") == "gemma-2-9b"


@pytest.mark.parametrize("hub_id, billions", sorted(PUBLISHED_PARAMS_B.items()))
def test_table_shapes_reproduce_published_parameter_counts(hub_id, billions):
    config = load_model_config(hub_id)
    assert Arch.from_config(config).params() / 1e9 == pytest.approx(billions, rel=0.02)


def test_table_covers_the_promised_families():
    names = " ".join(table_names()).lower()
    for family in ("llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "70b", "qwen2.5-0.5b", "qwen2.5-32b",
                   "qwen3-0.6b", "qwen3-32b", "mistral-7b", "gemma-2", "gemma-3", "phi-3", "phi-4"):
        assert family in names, family
    assert table_lookup("nobody/nothing-13b") is None


def test_unknown_model_offline_raises_config_error_with_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as info:
        load_model_config("nobody/unknown-model")
    assert "unknown model" in info.value.message and "config.json" in info.value.hint


def test_missing_path_and_bad_configs_raise_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_model_config(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="no config.json"):
        load_model_config(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    with pytest.raises(ConfigError, match="lacks intermediate_size"):
        load_model_config(str(tmp_path))
    (tmp_path / "config.json").write_text("not json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_config(str(tmp_path))
    with pytest.raises(ConfigError):
        load_model_config("  ")
