"""Model loading: LoRA on the blocks' linear layers, the hidden-state path equals the real logits, the
reference policy is the adapter switched off, 4-bit NF4 on CPU, clear errors for bad model names."""
import pytest
import torch

from grpo_studio.engine.model import policy as pm
from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.rollout.generation import completion_mask, generate, left_pad
from grpo_studio.kernels import token_logprobs


def load(folder, **changes):
    config = TrainConfig(model=str(folder), device="cpu", dtype="float32")
    config.lora.r = 4
    for key, value in changes.items():
        setattr(config, key, value)
    path, base = pm.resolve_model_path(config.model)
    return pm.load_policy(config, path, base, pm.load_tokenizer(path))


def batch(tokenizer):
    ids, mask = left_pad([tokenizer.encode("What is 2 + 3?"), tokenizer.encode("12 * 4")], tokenizer.pad_token_id,
                         torch.device("cpu"))
    return ids, mask


@pytest.mark.parametrize("arch_dir", ["tiny_llama_dir", "tiny_qwen2_dir"])
def test_lora_on_blocks_and_hidden_path_matches_logits(arch_dir, request):
    policy = load(request.getfixturevalue(arch_dir))
    model = policy.model
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    for module in ("q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"):
        assert any(f"{module}.lora_A" in n for n in trainable), module
    assert not any("lm_head" in n for n in trainable)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    ids, mask = batch(policy.tokenizer)
    hidden = pm.hidden_states(model, ids, mask)
    logits = model(input_ids=ids, attention_mask=mask,
                   position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
    via_hidden = hidden @ pm.lm_head_weight(model).T
    keep = mask.bool()
    assert torch.allclose(via_hidden[keep], logits[keep], atol=1e-5)


def test_reference_mode_is_the_base_model(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    policy = load(tiny_llama_dir)
    model, weight = policy.model, pm.lm_head_weight(policy.model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)
    ids, mask = batch(policy.tokenizer)
    target = ids[:, 1:]
    with torch.no_grad():
        tuned = token_logprobs(pm.hidden_states(model, ids, mask)[:, :-1], weight, target)
        with pm.reference_mode(model):
            ref = token_logprobs(pm.hidden_states(model, ids, mask)[:, :-1], weight, target)
        base = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir), dtype=torch.float32)
        logits = base(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        expected = logits[:, :-1].log_softmax(-1).gather(-1, target[..., None]).squeeze(-1)
    keep = mask[:, 1:].bool()
    assert torch.allclose(ref[keep], expected[keep], atol=1e-5)
    assert not torch.allclose(tuned[keep], expected[keep], atol=1e-3)  # the adapter is back on afterwards
    assert sum(p.numel() for p in model.parameters()) < 1.2 * sum(p.numel() for p in base.parameters())


def test_lm_head_cannot_carry_lora(tiny_llama_dir):
    config = TrainConfig(model=str(tiny_llama_dir), device="cpu")
    config.lora.target_modules = ["q_proj", "lm_head"]
    path, base = pm.resolve_model_path(config.model)
    with pytest.raises(ConfigError, match="lm_head"):
        pm.load_policy(config, path, base, pm.load_tokenizer(path))


def test_four_bit_nf4_on_cpu(tiny_llama_dir, four_bit_on_cpu):
    policy = load(tiny_llama_dir, load_in_4bit=True)
    import bitsandbytes as bnb

    quantized = [n for n, m in policy.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert any("q_proj" in n for n in quantized)
    ids, mask = batch(policy.tokenizer)
    hidden = pm.hidden_states(policy.model, ids, mask)
    loss = (hidden @ pm.lm_head_weight(policy.model).T).logsumexp(-1).mean()
    loss.backward()
    grads = [p.grad for n, p in policy.model.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_bad_model_names_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        pm.resolve_model_path(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="config.json"):
        pm.resolve_model_path(str(tmp_path / "empty"))
    with pytest.raises(ConfigError) as info:
        pm.resolve_model_path("nobody-here/not-a-cached-model")
    assert "cache" in info.value.message and "download" in info.value.hint


def test_generation_masks_after_eos_and_keeps_groups_together(tiny_llama_dir):
    policy = load(tiny_llama_dir)
    tok = policy.tokenizer
    prompts = [tok.encode("What is 2 + 3?"), tok.encode("12")]
    torch.manual_seed(0)
    rollout = generate(policy.model, tok, prompts, num_generations=3, max_completion_length=7)
    assert rollout.size == 6 and rollout.completion_ids.shape[1] <= 7
    assert torch.equal(rollout.prompt_ids[0], rollout.prompt_ids[2])  # group members share their prompt
    assert torch.equal(rollout.completion_mask, completion_mask(rollout.completion_ids, [tok.eos_token_id]))
    assert len(rollout.texts) == 6


def test_completion_mask_keeps_first_eos():
    ids = torch.tensor([[5, 6, 2, 0, 0], [5, 5, 5, 5, 5], [2, 7, 2, 0, 0]])
    assert completion_mask(ids, [2]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
