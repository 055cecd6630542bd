"""The training forward that runs each prompt once for its G completions gives the plain forward's hidden
states and the same LoRA gradients (float tolerance), on several architectures, with left-padded prompts of
different lengths and right-padded completions."""
import pytest
import torch

from grpo_studio.engine.model import policy as policy_model
from grpo_studio.engine.train.shared_prefix import completion_hidden_states, distinct_prompts


def _lora_model(tmp_path, arch):
    from peft import LoraConfig, get_peft_model

    from tiny_models import build_model

    model, _ = build_model(tmp_path / arch, arch=arch, hidden_size=32, layers=2)
    model = get_peft_model(model.float(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                     task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():  # non-zero B so the adapter changes the forward and its gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    model.train()
    return model


def _batch(vocab, G=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (n,), generator=gen) for n in (5, 9)]
    P, C = 9, 6
    prompt_ids = torch.zeros(len(prompts) * G, P, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompt_ids)
    for i, p in enumerate(prompts):
        prompt_ids[i * G:(i + 1) * G, P - len(p):] = p
        prompt_mask[i * G:(i + 1) * G, P - len(p):] = 1
    completion_ids = torch.randint(3, vocab, (len(prompts) * G, C), generator=gen)
    lengths = torch.tensor([6, 2, 4, 1, 6, 3])[:len(prompts) * G]
    completion_mask = (torch.arange(C)[None] < lengths[:, None]).long()
    completion_ids = completion_ids.masked_fill(completion_mask == 0, 0)
    return prompt_ids, prompt_mask, completion_ids, completion_mask


def _plain(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    ids, mask = torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1)
    hidden = policy_model.hidden_states(model, ids, mask)
    start = prompt_ids.shape[1] - 1
    return hidden[:, start:start + completion_ids.shape[1]]


def test_distinct_prompts_groups_adjacent_equal_rows():
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [7, 8, 9], [7, 8, 9], [0, 5, 6]])
    mask = torch.tensor([[0, 1, 1]] * 2 + [[1, 1, 1]] * 3 + [[1, 1, 1]])  # last row: same ids, other mask
    firsts, inverse = distinct_prompts(ids, mask)
    assert firsts.tolist() == [0, 2, 5] and inverse.tolist() == [0, 0, 1, 1, 1, 2]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma2", "phi3"])
def test_shared_prompt_forward_matches_plain_forward(tmp_path, arch):
    torch.manual_seed(0)
    model = _lora_model(tmp_path, arch)
    batch = _batch(model.config.vocab_size)
    mask = batch[3].float()
    weights = torch.randn(batch[2].shape + (32,), generator=torch.Generator().manual_seed(1))
    results = []
    for forward in (_plain, lambda m, *b: completion_hidden_states(policy_model.decoder(m), *b)):
        model.zero_grad(set_to_none=True)
        hidden = forward(model, *batch)
        ((hidden * weights).sum(-1) * mask).sum().backward()  # a loss on the real completion positions only
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results.append((hidden.detach() * mask[..., None], grads))
    (plain_h, plain_g), (shared_h, shared_g) = results
    assert shared_h.shape == plain_h.shape
    torch.testing.assert_close(shared_h, plain_h, atol=2e-5, rtol=1e-4)
    assert plain_g.keys() == shared_g.keys() and any(g.abs().sum() > 0 for g in plain_g.values())
    for name in plain_g:
        torch.testing.assert_close(shared_g[name], plain_g[name], atol=2e-5, rtol=1e-4, msg=name)
