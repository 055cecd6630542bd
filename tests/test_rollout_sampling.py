"""Sampling: the fast path's logits processing equals Hugging Face's processors (same order, same
semantics), and its samples follow the same distribution as HF generate's.

Statistical tests: chi-square on a 12-token vocabulary, each at a significance level of 1e-3, so a correct
sampler fails one with probability 0.1% over the draw of seeds; the seeds are fixed, so a given torch build
either always passes or always fails (no flakes). A power check shows the same test rejects a sampler
whose temperature is off (0.7 vs 1.0).
"""
from __future__ import annotations

import pytest
import torch

from grpo_studio.engine.rollout.generation import generate
from grpo_studio.engine.rollout.sampling import SamplingParams, process_logits

ALPHA = 1e-3
VOCAB, EOS, PAD = 12, 11, 0
PROMPT = [3, 5, 3, 7, 1]
SETTINGS = SamplingParams(temperature=0.7, top_p=0.9, top_k=7, min_p=0.05, repetition_penalty=1.3)


def _hf_processors(params: SamplingParams):
    from transformers.generation import logits_process as lp

    procs = lp.LogitsProcessorList()  # HF's order: penalties first, then temperature, top-k, top-p, min-p
    if params.repetition_penalty != 1.0:
        procs.append(lp.RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature != 1.0:
        procs.append(lp.TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        procs.append(lp.TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        procs.append(lp.TopPLogitsWarper(params.top_p))
    if params.min_p > 0:
        procs.append(lp.MinPLogitsWarper(params.min_p))
    return procs


@pytest.mark.parametrize("params", [SETTINGS, SamplingParams(top_k=3), SamplingParams(top_p=0.5, min_p=0.2),
                                    SamplingParams(temperature=1.7, repetition_penalty=0.8),
                                    SamplingParams(top_k=100, top_p=0.01)])
def test_process_logits_equals_hf_processors(params):
    gen = torch.Generator().manual_seed(0)
    scores = (torch.randn(64, 50, generator=gen) * 3).round(decimals=1)  # rounding makes ties at the cut-offs
    input_ids = torch.randint(0, 50, (64, 9), generator=gen)
    seen = torch.zeros(64, 50, dtype=torch.bool).scatter(1, input_ids, True)
    expected = _hf_processors(params)(input_ids, scores.clone())
    assert torch.equal(process_logits(scores, seen, params), expected)


class IdsTokenizer:
    pad_token_id, eos_token_id = PAD, EOS

    def batch_decode(self, rows, skip_special_tokens=True):
        return [" ".join(map(str, r.tolist())) for r in rows]


@pytest.fixture(scope="module")
def tiny_vocab_model():
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         eos_token_id=EOS, pad_token_id=PAD, bos_token_id=1)
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(5)  # peaked enough that top-k, top-p and min-p all cut some mass
    return model


def _pairs(model, backend: str, params: SamplingParams, seeds=range(8), rows: int = 400) -> torch.Tensor:
    """(first, second) completion token of rows x len(seeds) samples, as one index first * VOCAB + second."""
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        r = generate(model, IdsTokenizer(), [PROMPT], num_generations=rows, max_completion_length=2,
                     sampling=params, backend=backend)
        ids = torch.nn.functional.pad(r.completion_ids, (0, 2 - r.completion_ids.shape[1]), value=PAD)
        out.append(ids[:, 0] * VOCAB + ids[:, 1])
    return torch.cat(out)


def _chi2_p(counts: torch.Tensor) -> float:
    """p-value of the chi-square test of homogeneity for a [groups, categories] table (sparse categories,
    combined count < 10, merged into one)."""
    counts = counts.double()
    total = counts.sum(0)
    counts = torch.cat([counts[:, total >= 10], counts[:, total < 10].sum(1, keepdim=True)], 1)
    counts = counts[:, counts.sum(0) > 0]
    expected = counts.sum(1, keepdim=True) * counts.sum(0, keepdim=True) / counts.sum()
    stat = ((counts - expected) ** 2 / expected).sum()
    df = (counts.shape[0] - 1) * (counts.shape[1] - 1)
    return float(torch.special.gammaincc(torch.tensor(df / 2.0, dtype=torch.float64), stat / 2))


def _table(*samples: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.bincount(s, minlength=VOCAB * VOCAB) for s in samples])


def test_sampled_tokens_follow_hf_generate(tiny_vocab_model):
    hf = _pairs(tiny_vocab_model, "hf", SETTINGS)
    fast = _pairs(tiny_vocab_model, "fast", SETTINGS, seeds=range(100, 108))
    assert (hf // VOCAB == EOS).any() and (hf // VOCAB != EOS).any()  # some rows end at once, some go on
    assert len(torch.unique(hf)) >= 6  # the test looks at a real spread of outcomes
    assert _chi2_p(_table(hf, fast)) > ALPHA
    # power: the same test tells a sampler whose temperature is off
    wrong = _pairs(tiny_vocab_model, "fast", SamplingParams(top_p=0.9, top_k=7, min_p=0.05, repetition_penalty=1.3),
                   seeds=range(200, 208))
    assert _chi2_p(_table(hf, wrong)) < ALPHA


def test_first_token_follows_the_exact_distribution(tiny_vocab_model):
    """Goodness of fit of the fast path's first tokens against HF's processors applied to the model's logits."""
    with torch.no_grad():
        logits = tiny_vocab_model(input_ids=torch.tensor([PROMPT])).logits[:, -1]
    probs = _hf_processors(SETTINGS)(torch.tensor([PROMPT]), logits).softmax(-1)[0].double()
    first = _pairs(tiny_vocab_model, "fast", SETTINGS, seeds=range(300, 308)) // VOCAB
    counts = torch.bincount(first, minlength=VOCAB).double()
    assert counts[probs == 0].sum() == 0  # nothing the filters remove is ever drawn
    keep = probs > 0
    expected = probs[keep] * counts.sum()
    stat = ((counts[keep] - expected) ** 2 / expected).sum()
    p = float(torch.special.gammaincc(torch.tensor((int(keep.sum()) - 1) / 2.0, dtype=torch.float64), stat / 2))
    assert p > ALPHA
