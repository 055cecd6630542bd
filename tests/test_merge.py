"""Merged model: a Hugging Face folder whose weights and outputs equal the base with the adapter on."""
import json

import pytest

torch = pytest.importorskip("torch")

from grpo_studio.engine.common.errors import ExportError  # noqa: E402
from grpo_studio.engine.export.merge import merge_adapter  # noqa: E402
from test_export_gguf import make_adapter  # noqa: E402


def test_merged_folder_equals_adapter_on(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir, adapter_dir, peft_model = make_adapter(tmp_path, "qwen2", use_rslora=True, rank_pattern={"q_proj": 8})
    logs = []
    result = merge_adapter(adapter_dir, tmp_path / "merged", load_in_4bit=True, log=logs.append)
    assert any("original full-precision" in line for line in logs)
    names = {p.name for p in result.path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert result.bytes > 0 and result.dtype == "float32"
    merged = AutoModelForCausalLM.from_pretrained(str(result.path), dtype=torch.float32)
    assert not any("lora" in k for k in merged.state_dict())
    ids = AutoTokenizer.from_pretrained(str(result.path))("What is 2 + 3?", return_tensors="pt").input_ids
    peft_model.eval()
    with torch.no_grad():
        want = peft_model(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        with peft_model.disable_adapter():
            base = peft_model(input_ids=ids).logits
    assert (want - base).abs().max() > 1e-3  # the adapter matters
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


def test_saved_in_the_base_dtype_and_replaces_an_earlier_merge(tmp_path):
    base_dir, adapter_dir, _ = make_adapter(tmp_path, "llama")
    config = json.loads((base_dir / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (base_dir / "config.json").write_text(json.dumps(config))
    out = tmp_path / "merged"
    merge_adapter(adapter_dir, out)
    result = merge_adapter(adapter_dir, out, force=True)  # again: replaces the first
    assert result.dtype == "bfloat16"
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert f.get_tensor("model.layers.0.self_attn.q_proj.weight").dtype == torch.bfloat16
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_refuses_a_non_empty_folder(tmp_path):
    _, adapter_dir, _ = make_adapter(tmp_path, "llama")
    out = tmp_path / "somewhere"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        merge_adapter(adapter_dir, out)
    assert (out / "notes.txt").read_text() == "mine"
