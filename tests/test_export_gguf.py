"""GGUF LoRA export: read the file back, apply it to the base weights as llama.cpp would, compare with peft."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")

from grpo_studio.engine.common.errors import ExportError  # noqa: E402
from grpo_studio.engine.export.gguf_adapter import export_gguf  # noqa: E402
from grpo_studio.engine.export.gguf_names import TensorNames, arch_info, permute_heads, permute_rows  # noqa: E402

LLAMA_BLOCK = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
EXPECTED = {  # arch -> (general.architecture, tensor names per block)
    "llama": ("llama", LLAMA_BLOCK),
    "mistral": ("llama", LLAMA_BLOCK),  # llama.cpp converts MistralForCausalLM with its Llama converter
    "qwen2": ("qwen2", LLAMA_BLOCK),
    "qwen3": ("qwen3", LLAMA_BLOCK),
    "gemma2": ("gemma2", LLAMA_BLOCK),
    "gemma3": ("gemma3", LLAMA_BLOCK),
    "phi3": ("phi3", {"attn_qkv", "attn_output", "ffn_up", "ffn_down"}),  # fused projections
}


def build_base(path: Path, arch: str):
    """A tiny random model of `arch` saved at path (gemma3 from its text config class)."""
    from tiny_models import build_model, build_tokenizer

    if arch != "gemma3":
        return build_model(path, arch)[0]
    import transformers

    tokenizer = build_tokenizer(path)
    config = transformers.Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(path))
    return model


def make_adapter(tmp: Path, arch: str = "llama", seed: int = 1, **lora):
    """(base_dir, adapter_dir, peft model): a tiny base plus a LoRA with random non-zero lora_B, saved the way
    the engine saves it (base_model_name_or_path = the base folder)."""
    from peft import LoraConfig, get_peft_model

    base_dir, adapter_dir = tmp / f"base-{arch}", tmp / f"adapter-{arch}"
    model = build_base(base_dir, arch)
    settings = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", **lora}
    peft_model = get_peft_model(model, LoraConfig(**settings))
    torch.manual_seed(seed)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    peft_model.peft_config["default"].base_model_name_or_path = str(base_dir)
    peft_model.save_pretrained(str(adapter_dir))
    return base_dir, adapter_dir, peft_model


def read_gguf(path: Path) -> tuple[dict, dict]:
    """(metadata, tensors as float32 numpy in numpy shape) of a GGUF file."""
    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = {}
    for t in reader.tensors:
        data = np.asarray(t.data)
        if t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            data = gguf.quants.dequantize(data, t.tensor_type)
        tensors[t.name] = (data.astype(np.float32), t.tensor_type, [int(n) for n in t.shape])
    return fields, tensors


def as_gguf_base(name: str, weight: np.ndarray, config: dict) -> np.ndarray:
    """A base weight as llama.cpp's convert_hf_to_gguf.py stores it (q/k rows permuted for the Llama family)."""
    if config["model_type"] not in ("llama", "mistral"):  # only llama.cpp's Llama converter permutes
        return weight
    heads = permute_heads(name, config)
    return permute_rows(weight, heads) if heads else weight


def apply_like_llama_cpp(path: Path, base_dir: Path, modules: list[str]) -> dict[str, np.ndarray]:
    """W + alpha / rank * B @ A for each module, on the base weights in GGUF layout."""
    from safetensors.numpy import load_file

    config = json.loads((base_dir / "config.json").read_text())
    base = load_file(str(base_dir / "model.safetensors"))
    fields, tensors = read_gguf(path)
    alpha = float(fields["adapter.lora.alpha"])
    names = TensorNames(arch_info(config), config)
    out = {}
    for module in modules:
        name = names.gguf_name(module)
        a, b = tensors[name + ".lora_a"][0], tensors[name + ".lora_b"][0]
        rank = b.shape[1]
        scale = alpha / rank if alpha else 1.0
        out[module] = as_gguf_base(module, base[module + ".weight"].astype(np.float32), config) + scale * (b @ a)
    return out


def peft_merged(peft_model, base_dir: Path) -> dict[str, np.ndarray]:
    config = json.loads((base_dir / "config.json").read_text())
    merged = copy.deepcopy(peft_model).merge_and_unload().state_dict()
    return {k[:-len(".weight")]: as_gguf_base(k[:-len(".weight")], v.float().numpy(), config)
            for k, v in merged.items() if k.endswith("proj.weight")}


def assert_matches(got: dict, expected: dict, base_dir: Path, rtol: float) -> None:
    from safetensors.numpy import load_file

    config = json.loads((base_dir / "config.json").read_text())
    base = load_file(str(base_dir / "model.safetensors"))
    assert set(got) == set(expected) and got
    for module, weight in expected.items():
        delta = weight - as_gguf_base(module, base[module + ".weight"], config)
        assert np.abs(delta).max() > 1e-3, f"{module}: the adapter changes nothing; the test would prove nothing"
        err = np.abs(got[module] - weight).max()
        assert err <= rtol * np.abs(delta).max(), f"{module}: max error {err:.3g} vs delta {np.abs(delta).max():.3g}"


# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("outtype,rtol", [("f32", 1e-5), ("f16", 1e-2)])
def test_round_trip_matches_peft_merge(tmp_path, arch, outtype, rtol):
    base_dir, adapter_dir, model = make_adapter(tmp_path, arch)
    result = export_gguf(adapter_dir, tmp_path / "a.gguf", outtype)
    expected = peft_merged(model, base_dir)
    assert_matches(apply_like_llama_cpp(result.path, base_dir, list(expected)), expected, base_dir, rtol)
    assert result.folded == [] and result.arch == arch


def test_qk_permutation_is_applied_to_lora_b_for_llama_only(tmp_path):
    """permute(W + s*B@A) == permute(W) + s*permute(B)@A, and the file holds permute(B) for llama q/k."""
    base_dir, adapter_dir, model = make_adapter(tmp_path, "llama")
    _, tensors = read_gguf(export_gguf(adapter_dir, tmp_path / "a.gguf", "f32").path)
    lora = model.base_model.model.model.layers[0].self_attn
    for proj, heads in (("q_proj", 4), ("k_proj", 2)):  # 4 query heads, 2 key/value heads (GQA)
        b = getattr(lora, proj).lora_B["default"].weight.detach().numpy()
        stored = tensors[f"blk.0.attn_{proj[0]}.weight.lora_b"][0]
        assert np.array_equal(stored, permute_rows(b, heads)) and not np.array_equal(stored, b)
    v_b = lora.v_proj.lora_B["default"].weight.detach().numpy()
    assert np.array_equal(tensors["blk.0.attn_v.weight.lora_b"][0], v_b)  # v is never permuted
    # the identity the export relies on
    rng = np.random.default_rng(0)
    w, b, a = rng.normal(size=(64, 32)), rng.normal(size=(64, 4)), rng.normal(size=(4, 32))
    assert np.allclose(permute_rows(w + 2 * b @ a, 4), permute_rows(w, 4) + 2 * permute_rows(b, 4) @ a)


def test_qwen2_is_not_permuted(tmp_path):
    base_dir, adapter_dir, model = make_adapter(tmp_path, "qwen2")
    _, tensors = read_gguf(export_gguf(adapter_dir, tmp_path / "a.gguf", "f32").path)
    b = model.base_model.model.model.layers[1].self_attn.q_proj.lora_B["default"].weight.detach().numpy()
    assert np.array_equal(tensors["blk.1.attn_q.weight.lora_b"][0], b)


@pytest.mark.parametrize("lora", [
    {"use_rslora": True},  # one rank: a single alpha still expresses alpha / sqrt(r)
    {"use_rslora": True, "rank_pattern": {"q_proj": 8, "down_proj": 2}},  # mixed ranks: folded
    {"rank_pattern": {"v_proj": 8}, "alpha_pattern": {"layers.1.mlp.down_proj": 3, "o_proj": 40}},
])
def test_rslora_and_patterns_are_exact(tmp_path, lora):
    base_dir, adapter_dir, model = make_adapter(tmp_path, "llama", **lora)
    result = export_gguf(adapter_dir, tmp_path / "a.gguf", "f32")
    expected = peft_merged(model, base_dir)
    assert_matches(apply_like_llama_cpp(result.path, base_dir, list(expected)), expected, base_dir, 1e-5)
    if len(lora) > 1:
        assert result.folded, "mixed scales must be folded into lora_b"
    else:
        assert result.folded == [] and result.alpha == pytest.approx(8 * 2)  # alpha/sqrt(4) == 16/4


def test_metadata(tmp_path):
    base_dir, adapter_dir, _ = make_adapter(tmp_path, "qwen2", r=8, lora_alpha=16)
    fields, tensors = read_gguf(export_gguf(adapter_dir, tmp_path / "a.gguf", "f16").path)
    assert fields["general.architecture"] == "qwen2"
    assert fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(16.0)
    assert fields["general.base_model.count"] == 1
    assert fields["general.base_model.0.name"] == base_dir.name
    assert fields["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_F16)
    a, qtype, ne = tensors["blk.0.attn_q.weight.lora_a"]
    b, _, ne_b = tensors["blk.0.attn_q.weight.lora_b"]
    assert qtype == gguf.GGMLQuantizationType.F16
    assert a.shape == (8, 32) and ne == [32, 8]  # lora_a: (rank, in); ggml ne [in, rank]
    assert b.shape == (32, 8) and ne_b == [8, 32]  # lora_b: (out, rank); ggml ne [rank, out]
    names = list(tensors)
    assert all(names[i].endswith(".lora_a") and names[i + 1] == names[i][:-1] + "b" for i in range(0, len(names), 2))


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_names_for_every_architecture(tmp_path, arch):
    from safetensors.numpy import load_file

    base_dir, adapter_dir, _ = make_adapter(tmp_path, arch)
    fields, tensors = read_gguf(export_gguf(adapter_dir, tmp_path / "a.gguf", "f32").path)
    gguf_arch, block = EXPECTED[arch]
    assert fields["general.architecture"] == gguf_arch
    expected = {f"blk.{i}.{n}.weight.lora_{ab}" for i in range(2) for n in block for ab in "ab"}
    assert set(tensors) == expected
    base = load_file(str(base_dir / "model.safetensors"))
    hf = {"attn_qkv": "self_attn.qkv_proj", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
          "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
          "ffn_up": "mlp.gate_up_proj" if arch == "phi3" else "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    for n in block:  # the shapes llama.cpp checks against the base tensor
        out, inp = base[f"model.layers.1.{hf[n]}.weight"].shape
        assert tensors[f"blk.1.{n}.weight.lora_a"][2] == [inp, 4]
        assert tensors[f"blk.1.{n}.weight.lora_b"][2] == [4, out]


def test_q8_0_where_rows_allow_else_f16(tmp_path):
    Q = gguf.GGMLQuantizationType
    base_dir, adapter_dir, model = make_adapter(tmp_path, "llama", r=32, lora_alpha=32,
                                                rank_pattern={"v_proj": 4})
    result = export_gguf(adapter_dir, tmp_path / "a.gguf", "q8_0")
    _, tensors = read_gguf(result.path)
    assert tensors["blk.0.attn_q.weight.lora_a"][1] == Q.Q8_0  # rows of 32 inputs
    assert tensors["blk.0.attn_q.weight.lora_b"][1] == Q.Q8_0  # rows of rank 32
    assert tensors["blk.0.attn_v.weight.lora_a"][1] == Q.Q8_0
    assert tensors["blk.0.attn_v.weight.lora_b"][1] == Q.F16  # rank 4: not a whole q8_0 block
    assert set(result.f16_fallback) == {"blk.0.attn_v.weight.lora_b", "blk.1.attn_v.weight.lora_b"}
    expected = peft_merged(model, base_dir)
    assert_matches(apply_like_llama_cpp(result.path, base_dir, list(expected)), expected, base_dir, 3e-2)


def test_bf16(tmp_path):
    base_dir, adapter_dir, model = make_adapter(tmp_path, "llama")
    result = export_gguf(adapter_dir, tmp_path / "a.gguf", "bf16")
    _, tensors = read_gguf(result.path)
    assert tensors["blk.0.attn_q.weight.lora_a"][1] == gguf.GGMLQuantizationType.BF16
    expected = peft_merged(model, base_dir)
    assert_matches(apply_like_llama_cpp(result.path, base_dir, list(expected)), expected, base_dir, 2e-2)


# ---------------------------------------------------------------------------------------------------------
# Refusals: each before anything is written


def _refuses(adapter_dir: Path, out: Path, match: str, **kwargs) -> ExportError:
    with pytest.raises(ExportError, match=match) as info:
        export_gguf(adapter_dir, out, "f16", **kwargs)
    assert info.value.hint
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return info.value


def test_refuses_dora(tmp_path):
    _, adapter_dir, _ = make_adapter(tmp_path, "llama", use_dora=True)
    _refuses(adapter_dir, tmp_path / "a.gguf", "DoRA")


def test_refuses_modules_to_save(tmp_path):
    _, adapter_dir, _ = make_adapter(tmp_path, "llama", target_modules=["q_proj"], modules_to_save=["lm_head"])
    _refuses(adapter_dir, tmp_path / "a.gguf", "modules_to_save")


def test_refuses_embedding_lora(tmp_path):
    _, adapter_dir, _ = make_adapter(tmp_path, "llama", target_modules=["embed_tokens", "q_proj"])
    _refuses(adapter_dir, tmp_path / "a.gguf", "embedding LoRA")


def test_refuses_unsupported_architecture(tmp_path):
    base_dir, adapter_dir, _ = make_adapter(tmp_path, "llama")
    config = json.loads((base_dir / "config.json").read_text())
    config["architectures"] = ["FalconForCausalLM"]
    (base_dir / "config.json").write_text(json.dumps(config))
    error = _refuses(adapter_dir, tmp_path / "a.gguf", "FalconForCausalLM")
    assert "--merged" in error.hint


def test_refuses_missing_adapter_file_and_missing_base(tmp_path):
    _, adapter_dir, _ = make_adapter(tmp_path, "llama")
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "nobody/not-cached-model"
    (adapter_dir / "adapter_config.json").write_text(json.dumps(config))
    error = _refuses(adapter_dir, tmp_path / "a.gguf", "not on this machine")
    assert "grpo-studio download nobody/not-cached-model" in error.hint
    (adapter_dir / "adapter_model.safetensors").unlink()
    _refuses(adapter_dir, tmp_path / "a.gguf", "missing adapter file")
    _refuses(tmp_path / "nothing-here", tmp_path / "a.gguf", "not found")


def test_run_folder_without_adapter_says_what_to_do(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: demo\n")
    error = _refuses(run, tmp_path / "a.gguf", "no final adapter")
    assert "stop" in error.hint


def test_replaces_an_existing_file_atomically(tmp_path):
    _, adapter_dir, _ = make_adapter(tmp_path, "qwen2")
    out = tmp_path / "exports" / "a.gguf"
    out.parent.mkdir()
    out.write_bytes(b"old")
    result = export_gguf(adapter_dir, out, "f16", force=True)  # replacing needs asking (issue 27, finding 2)
    assert out.read_bytes()[:4] == b"GGUF" and result.bytes == out.stat().st_size
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.gguf"]
