"""The fast rollout backend against Hugging Face generate: the same greedy tokens and masks (Llama-, Qwen2-
and Phi-3-shaped models, left-padded prompts of different lengths, EOS mid-batch, slices of a step), the
training weights bit for bit the same afterwards, the 4-bit path, and the config's sampling fields."""
from __future__ import annotations

import pytest
import torch

from grpo_studio.engine.rollout import decode as fast_generate
from grpo_studio.engine.rollout import weights as gw
from grpo_studio.engine.common.config import config_from_dict
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.rollout.generation import generate
from grpo_studio.engine.rollout.sampling import SamplingParams
from tiny_models import build_model

GREEDY = SamplingParams(greedy=True)
TEXTS = ["What is 2 + 3?", "Solve 12", "The quick brown fox jumps over the lazy dog 0 1 2", "system"]


def _lora_model(path, arch: str):
    from peft import LoraConfig, get_peft_model

    model, tok = build_model(path, arch=arch, hidden_size=64, layers=2)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():  # a trained-looking adapter, so merging really changes the weights
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model, tok


@pytest.fixture(scope="module", params=["llama", "qwen2", "phi3"])
def arch_model(request, tmp_path_factory):
    return _with_mid_batch_eos(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def qwen2_model(tmp_path_factory):
    return _with_mid_batch_eos(tmp_path_factory, "qwen2")


def _with_mid_batch_eos(tmp_path_factory, arch: str):
    model, tok = _lora_model(tmp_path_factory.mktemp(arch), arch)
    prompts = [tok(t)["input_ids"] for t in TEXTS]
    # An EOS that greedy decoding reaches mid-way in some rows only: a token that row 0 produces at step 3
    hf = generate(model, tok, prompts, num_generations=1, max_completion_length=12, sampling=GREEDY, backend="hf")
    model.get_base_model().generation_config.eos_token_id = [tok.eos_token_id, int(hf.completion_ids[0, 3])]
    return model, tok, prompts


def _both(model, tok, prompts, **kwargs):
    args = dict(num_generations=2, max_completion_length=12, sampling=GREEDY, **kwargs)
    return generate(model, tok, prompts, backend="hf", **args), generate(model, tok, prompts, backend="fast", **args)


@pytest.mark.parametrize("static", [False, True], ids=["eager", "static-cache"])
def test_greedy_matches_hf_generate(arch_model, static, monkeypatch):
    model, tok, prompts = arch_model
    # static: the CUDA graphs layout (StaticCache, fixed shapes, finished rows kept), run eagerly on the CPU
    monkeypatch.setattr(fast_generate, "cuda_graphs_available", lambda device: static)
    hf, fast = _both(model, tok, prompts)
    assert "merged" in fast.generation
    lengths = hf.completion_mask.sum(1)
    assert lengths.min() < 12 and lengths.max() == 12  # some rows ended early, some ran to the limit
    assert len({len(p) for p in prompts}) == len(prompts)  # left padding of different widths
    assert torch.equal(fast.completion_ids, hf.completion_ids)
    assert torch.equal(fast.completion_mask, hf.completion_mask)
    assert torch.equal(fast.prompt_ids, hf.prompt_ids) and fast.texts == hf.texts


def test_slices_of_a_step_and_unmerged_adapter_match_hf(qwen2_model, monkeypatch):
    model, tok, prompts = qwen2_model
    # 3 completions per slice with G=2: slices start in the middle of a prompt's group
    hf, fast = _both(model, tok, prompts, batch_size=3)
    assert torch.equal(fast.completion_ids, hf.completion_ids[:, :fast.completion_ids.shape[1]])
    monkeypatch.setattr(gw, "free_memory", lambda device: 0)  # merged copies "do not fit"
    unmerged = generate(model, tok, prompts, num_generations=2, max_completion_length=12, sampling=GREEDY)
    assert "unmerged" in unmerged.generation
    assert torch.equal(unmerged.completion_ids, hf.completion_ids)


@pytest.mark.parametrize("generation_dtype", ["float32", "bfloat16"])
def test_training_weights_come_back_bitwise(tmp_path, generation_dtype):
    model, tok = _lora_model(tmp_path, "qwen2")
    before = {name: (p.detach().clone(), p.data_ptr(), p.dtype) for name, p in model.named_parameters()}
    modules = {name: m for name, m in model.named_modules()}
    torch.manual_seed(0)
    out = generate(model, tok, [tok(t)["input_ids"] for t in TEXTS], num_generations=3, max_completion_length=6,
                   sampling=SamplingParams(temperature=0.9, top_k=20, repetition_penalty=1.2),
                   generation_dtype=generation_dtype)
    assert f"generation in {generation_dtype}" in out.generation and "merged" in out.generation
    after = dict(model.named_parameters())
    assert after.keys() == before.keys()
    for name, (value, ptr, dtype) in before.items():
        p = after[name]
        assert p.dtype == dtype and p.data_ptr() == ptr, name
        assert torch.equal(p.detach(), value), name
    assert {name: m for name, m in model.named_modules()} == modules  # the LoRA layers are back in place
    assert model.training  # and the train/eval mode


def test_4bit_base_runs_and_matches_hf(tmp_path):
    pytest.importorskip("bitsandbytes")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    _, tok = build_model(tmp_path, arch="qwen2", hidden_size=64, layers=2)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)
    try:
        base = AutoModelForCausalLM.from_pretrained(str(tmp_path), quantization_config=quant, device_map={"": "cpu"},
                                                    dtype=torch.float32)
    except Exception as exc:  # a bitsandbytes build without a CPU backend
        pytest.skip(f"bitsandbytes cannot quantize on this machine: {exc}")
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    prompts = [tok(t)["input_ids"] for t in TEXTS[:3]]
    hf, fast = _both(model, tok, prompts)
    assert "merged" in fast.generation
    assert torch.equal(fast.completion_ids, hf.completion_ids)


def test_a_models_own_generation_config_never_applies(tmp_path):
    """A chat model's generation_config (repetition penalty, min_p, top_k, no-repeat n-grams) must not change
    what either backend samples: the same seed gives the same tokens as with an empty generation_config."""
    model, tok = _lora_model(tmp_path, "llama")
    prompts = [tok(t)["input_ids"] for t in TEXTS]
    sampling = SamplingParams(temperature=1.0)

    def sample(backend):
        torch.manual_seed(7)
        return generate(model, tok, prompts, num_generations=2, max_completion_length=10, sampling=sampling,
                        backend=backend).completion_ids

    clean = {b: sample(b) for b in ("hf", "fast")}
    config = model.get_base_model().generation_config
    config.repetition_penalty, config.min_p, config.top_k, config.no_repeat_ngram_size = 3.0, 0.5, 2, 1
    config.do_sample, config.temperature = False, 0.1
    for backend in ("hf", "fast"):
        assert torch.equal(sample(backend), clean[backend]), backend
    assert model.get_base_model().generation_config.repetition_penalty == 3.0  # left as it was


def test_config_sampling_fields():
    grpo = config_from_dict({"grpo": {"top_k": 50, "min_p": 0.05, "repetition_penalty": 1.1,
                                      "generation_backend": "hf", "generation_dtype": "bfloat16"}}).grpo
    assert SamplingParams.from_grpo(grpo) == SamplingParams(temperature=1.0, top_p=1.0, top_k=50, min_p=0.05,
                                                            repetition_penalty=1.1)
    defaults = config_from_dict({}).grpo
    assert (defaults.top_k, defaults.min_p, defaults.repetition_penalty, defaults.generation_backend) == (0, 0.0, 1.0,
                                                                                                         "auto")
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": {"top_k": -1, "min_p": 1.5, "repetition_penalty": 0,
                                   "generation_backend": "vllm", "generation_dtype": "int8"}})
    for name in ("top_k", "min_p", "repetition_penalty", "generation_backend", "generation_dtype"):
        assert f"grpo.{name}" in str(err.value)


@pytest.mark.parametrize("batch_size", [None, 4, 3])
def test_estimator_kv_row_is_what_the_fast_path_allocates(tmp_path, monkeypatch, batch_size):
    """Prompts of max_prompt_length tokens: the estimator's KV term equals the most cache memory alive at once
    (the expanded rows plus the slice's prefill, during the expansion; the cache is sized to the full
    completion length whether or not rows stop early)."""
    from grpo_studio.engine.rollout import kv_cache
    from grpo_studio.engine.common.estimate import default_settings
    from grpo_studio.engine.common.estimate_model import Arch, kv_cache_bytes

    model, tok = _lora_model(tmp_path, "qwen2")
    peak = 0
    real_select = kv_cache.select_rows

    def measured(cache, rows):
        nonlocal peak
        size = lambda: sum(t.numel() * t.element_size() for l in cache.layers for t in (l.keys, l.values))
        before = size()
        real_select(cache, rows)
        peak = max(peak, before + size())  # old and new tensors coexist during the copy

    monkeypatch.setattr(fast_generate, "select_rows", measured)
    prompt, completion = 9, 5
    generate(model, tok, [[5] * prompt, [6] * prompt], num_generations=3, max_completion_length=completion,
             sampling=GREEDY, generation_dtype="float32", batch_size=batch_size)
    c = model.get_base_model().config.to_dict()
    arch = Arch.from_config({"head_dim": c["hidden_size"] // c["num_attention_heads"], **c})
    settings = default_settings(dtype_bytes=4, num_generations=3, prompts_per_step=2, max_prompt_length=prompt,
                                max_completion_length=completion, generation_batch_size=batch_size)
    assert kv_cache_bytes(arch, settings) == peak
