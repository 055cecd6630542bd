"""Generating a step in slices (batch.generation_batch_size, or smaller slices after an out-of-memory) samples
the same completions as generating it at once: each completion's random draws are keyed by its place in the
step (row_rng.py), not by which rows share its batch."""
from __future__ import annotations

import pytest
import torch

from grpo_studio.engine.rollout.generation import generate
from grpo_studio.engine.rollout.row_rng import RowDraws, row_uniforms
from grpo_studio.engine.rollout.sampling import SamplingParams
from test_rollout_fast import TEXTS, _lora_model

SAMPLED = SamplingParams(temperature=1.3, top_k=50)  # spread out, so different draws give different tokens


@pytest.fixture(scope="module")
def model_and_prompts(tmp_path_factory):
    model, tok = _lora_model(tmp_path_factory.mktemp("llama"), "llama")
    return model, tok, [tok(t)["input_ids"] for t in TEXTS]


def _sample(model, tok, prompts, batch_size, seed=7):
    torch.manual_seed(seed)
    return generate(model, tok, prompts, num_generations=3, max_completion_length=10, sampling=SAMPLED,
                    backend="fast", batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_slices_sample_the_same_completions_as_one_batch(model_and_prompts, batch_size):
    model, tok, prompts = model_and_prompts
    whole, sliced = _sample(model, tok, prompts, None), _sample(model, tok, prompts, batch_size)
    assert torch.equal(sliced.completion_ids, whole.completion_ids)
    assert torch.equal(sliced.completion_mask, whole.completion_mask) and sliced.texts == whole.texts
    # the rollouts really are sampled: the G completions of a prompt differ, and another seed gives others
    assert len({tuple(row.tolist()) for row in whole.completion_ids[:3]}) > 1
    assert not torch.equal(_sample(model, tok, prompts, batch_size, seed=8).completion_ids, whole.completion_ids)


def test_row_uniforms_are_uniform_and_independent_of_the_rows_asked_with():
    rows = torch.arange(20_000)
    u = row_uniforms(12345, rows, 3)[:, 0]
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005
    assert torch.equal(row_uniforms(12345, rows[7:9], 3)[:, 0], u[7:9])  # a row's draw is its own
    assert not torch.equal(row_uniforms(12345, rows, 4)[:, 0], u)  # the next token draws afresh
    assert not torch.equal(row_uniforms(54321, rows, 3)[:, 0], u)  # another rollout draws afresh
    # neighbouring rows and tokens are uncorrelated
    assert abs(torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1].item()) < 0.03
    # the decode loop's block-wise draws are the same numbers
    draws = RowDraws(12345, rows[100:140], tokens=600)
    assert torch.equal(draws.at(torch.tensor([0, 39]), 3), row_uniforms(12345, rows[[100, 139]], 3))
    assert torch.equal(draws.at(torch.tensor([5]), 599), row_uniforms(12345, rows[[105]], 599))
