"""4-bit NF4 on the CPU through generation and training: bitsandbytes' CPU inference layout must never reach
a training forward (it crashed Qwen2's biased layers and silently dropped input gradients elsewhere)."""
import pytest
import torch

from grpo_studio.engine.model import policy as pm
from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.rollout.generation import generate, left_pad


def four_bit_policy(folder):
    config = TrainConfig(model=str(folder), device="cpu", dtype="float32", load_in_4bit=True)
    config.lora.r = 4
    path, base = pm.resolve_model_path(config.model)
    return pm.load_policy(config, path, base, pm.load_tokenizer(path))


@pytest.fixture(scope="module")
def qwen2_tied_dir(tmp_path_factory):
    from tiny_models import build_model

    path = tmp_path_factory.mktemp("tiny-qwen2-tied")
    build_model(path, "qwen2", hidden_size=64, tie_word_embeddings=True)  # q/k/v biases, tied embeddings
    return path


@pytest.mark.parametrize("arch_dir", ["qwen2_tied_dir", "tiny_llama_dir"])
def test_training_gradients_after_generation_equal_those_before(arch_dir, request):
    policy = four_bit_policy(request.getfixturevalue(arch_dir))
    model, tokenizer = policy.model, policy.tokenizer
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)  # non-zero LoRA: gradients flow through every frozen 4-bit layer
    ids, mask = left_pad([tokenizer.encode("What is 2 + 3?"), tokenizer.encode("12 * 4")], tokenizer.pad_token_id,
                         torch.device("cpu"))

    def gradients():
        model.zero_grad()
        pm.hidden_states(model, ids, mask).pow(2).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])

    model.train()
    before = gradients()
    generate(model, tokenizer, [tokenizer.encode("What is 2 + 3?")], num_generations=2, max_completion_length=4)
    assert model.training
    after = gradients()  # crashed with `result += bias` for Qwen2 before the fix
    assert torch.isfinite(after).all() and after.abs().max() > 0
    assert torch.allclose(before, after, atol=1e-6)
