"""grpo_studio.kernels on the torch path against the full-logits TRL reference (tests/grpo_reference.py)."""
from __future__ import annotations

import importlib
import itertools
import math

import pytest
import torch

from grpo_studio.kernels import GRPOLossOutput, token_logprobs

from grpo_studio.kernels import grpo_loss
from grpo_reference import reference_grpo_loss, reference_logprobs

# The package re-exports the function under the module's name, so fetch the module itself.
grpo_loss_module = importlib.import_module("grpo_studio.kernels.loss.functional")

ATOL = 1e-5


def make_inputs(batch=3, length=7, hidden_size=16, vocab=37, seed=0, pad=True, weight_grad=True):
    """Random inputs where the clip is active on some tokens (old log-probs drift from the policy's)."""
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, length, hidden_size, generator=gen, requires_grad=True)
    weight = (torch.randn(vocab, hidden_size, generator=gen) * 0.5).requires_grad_(weight_grad)
    ids = torch.randint(0, vocab, (batch, length), generator=gen)
    mask = torch.ones(batch, length)
    if pad:  # ragged completions: each row ends at a different length
        for b in range(batch):
            mask[b, max(1, length - 2 * b):] = 0
    advantages = torch.randn(batch, generator=gen)
    with torch.no_grad():
        logp = reference_logprobs(hidden, weight, ids)
    old = logp + 0.4 * torch.randn(batch, length, generator=gen)
    ref = logp + 0.3 * torch.randn(batch, length, generator=gen)
    return hidden, weight, ids, mask, advantages, old, ref


def assert_close(actual, expected, what, atol=ATOL):
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    diff = (actual.float() - expected.float()).abs()
    assert diff.max() <= atol, f"{what}: max abs diff {diff.max():.3g} at {diff.argmax()} (atol {atol})"


def run_both(inputs, chunk_size=None, **kwargs):
    hidden, weight, ids, mask, adv, old, ref = inputs
    ours = grpo_loss(hidden, weight, ids, mask, adv, chunk_size=chunk_size, **kwargs)
    ours_grads = torch.autograd.grad(ours.loss, [t for t in (hidden, weight) if t.requires_grad])
    expected = reference_grpo_loss(hidden, weight, ids, mask, adv, **kwargs)
    ref_grads = torch.autograd.grad(expected[0], [t for t in (hidden, weight) if t.requires_grad])
    return ours, ours_grads, expected, ref_grads


def check_against_reference(inputs, chunk_size=None, **kwargs):
    ours, ours_grads, expected, ref_grads = run_both(inputs, chunk_size, **kwargs)
    assert isinstance(ours, GRPOLossOutput)
    for name, a, e in zip(("loss", "logps", "kl", "clip_ratio"), ours, expected):
        assert_close(a, e, name)
    if kwargs.get("with_entropy"):
        assert_close(ours.entropy, expected[4], "entropy")
    else:
        assert ours.entropy is None
    for name, a, e in zip(("grad hidden", "grad weight"), ours_grads, ref_grads):
        assert_close(a, e, name)
    return ours


CASES = list(itertools.product(
    ["grpo", "bnpo", "dr_grpo", "dapo"],
    [0.0, 0.1],  # beta
    [True, False],  # old_logps given
))


@pytest.mark.parametrize("loss_type,beta,with_old", CASES)
def test_matches_trl_reference(loss_type, beta, with_old):
    inputs = make_inputs(seed=len(loss_type) + int(beta * 10) + with_old)
    hidden, weight, ids, mask, adv, old, ref = inputs
    out = check_against_reference(
        inputs, chunk_size=4, loss_type=loss_type, beta=beta, epsilon_low=0.2, epsilon_high=0.28,
        old_logps=old if with_old else None, ref_logps=ref if beta else None,
        max_completion_length=9 if loss_type == "dr_grpo" else None)
    if with_old:  # the inputs are built so the clip bites; otherwise clip branches go untested
        assert 0 < out.clip_ratio < 1
    else:
        assert out.clip_ratio == 0


GSPO_CASES = list(itertools.product(["grpo", "dapo", "dr_grpo"], [0.0, 0.1], [True, False]))


@pytest.mark.parametrize("loss_type,beta,with_old", GSPO_CASES)
def test_sequence_level_ratio_matches_trl_gspo(loss_type, beta, with_old):
    """GSPO: ratio = exp(masked mean log-ratio) per sequence; on-policy TRL's logp - logp.detach()."""
    inputs = make_inputs(batch=4, length=6, seed=40 + len(loss_type) + with_old)
    hidden, weight, ids, mask, adv, old, ref = inputs
    # A drift that is large on average per sequence, so the sequence-level clip bites on some rows.
    old = old + torch.tensor([0.5, -0.5, 0.05, 0.0])[:, None]
    out = check_against_reference(
        (hidden, weight, ids, mask, adv, old, ref), chunk_size=5, loss_type=loss_type, beta=beta,
        epsilon_low=3e-4, epsilon_high=4e-4, importance_sampling_level="sequence",
        old_logps=old if with_old else None, ref_logps=ref if beta else None,
        max_completion_length=9 if loss_type == "dr_grpo" else None)
    if with_old:
        assert 0 < out.clip_ratio < 1
        token_level = grpo_loss(hidden, weight, ids, mask, adv, old_logps=old, loss_type=loss_type,
                                max_completion_length=9, epsilon_low=3e-4, epsilon_high=4e-4)
        assert not torch.isclose(token_level.loss, out.loss)  # the level really changes the objective


def test_truncated_completions_masked_out_match_trl():
    """mask_truncated_completions: TRL zeroes a truncated completion's mask; the loss, its gradients and
    the normalisers then ignore that row."""
    hidden, weight, ids, mask, adv, old, ref = make_inputs(batch=4, length=6, seed=50)
    truncated = torch.tensor([True, False, True, False])
    masked = mask * (~truncated).float()[:, None]
    for loss_type in ("grpo", "dapo"):
        out = check_against_reference((hidden, weight, ids, masked, adv, old, ref), loss_type=loss_type,
                                      old_logps=old)
        hidden.grad = None
        out = grpo_loss(hidden, weight, ids, masked, adv, old_logps=old, loss_type=loss_type)
        grad_h, = torch.autograd.grad(out.loss, [hidden])
        assert torch.all(grad_h[truncated] == 0) and grad_h[~truncated].abs().sum() > 0


@pytest.mark.parametrize("temperature,chunk_size,vocab", [(1.0, 4, 37), (0.7, None, 9000)])
def test_entropy_of_the_sampled_positions_matches_full_softmax(temperature, chunk_size, vocab):
    """Entropy from the chunked pass (vocab over one entropy slice included) equals -sum p log p."""
    inputs = make_inputs(batch=3, length=5, hidden_size=8, vocab=vocab, seed=60)
    out = check_against_reference(inputs, chunk_size=chunk_size, temperature=temperature, with_entropy=True,
                                  old_logps=inputs[5])
    assert 0 < out.entropy < math.log(vocab)
    with torch.no_grad():
        again = grpo_loss(*inputs[:5], temperature=temperature, with_entropy=True)
    assert_close(again.entropy, out.entropy, "no-grad entropy")


@pytest.mark.parametrize("temperature", [0.7, 1.3])
def test_temperature_and_kl_reporting(temperature):
    inputs = make_inputs(seed=11)
    hidden, weight, ids, mask, adv, old, ref = inputs
    out = check_against_reference(inputs, temperature=temperature, old_logps=old, ref_logps=ref, beta=0.04)
    assert out.kl > 0
    assert_close(token_logprobs(hidden, weight, ids, temperature=temperature),
                 reference_logprobs(hidden, weight, ids, temperature), "token_logprobs")


def test_weight_without_grad_gives_hidden_grad_only():
    inputs = make_inputs(seed=3, weight_grad=False)
    hidden, weight, *_ = inputs
    check_against_reference(inputs, old_logps=inputs[5])
    out = grpo_loss(*inputs[:5])
    out.loss.backward()
    assert hidden.grad is not None and weight.grad is None


def test_edge_cases_empty_row_zero_advantages_odd_vocab_single_row():
    hidden, weight, ids, mask, adv, old, ref = make_inputs(batch=3, length=5, vocab=131, seed=5)
    mask[1] = 0  # a completion with zero tokens
    check_against_reference((hidden, weight, ids, mask, adv, old, ref), chunk_size=3, loss_type="grpo",
                            old_logps=old, ref_logps=ref, beta=0.1)
    zero_adv = torch.zeros_like(adv)  # all rewards equal in every group
    out = check_against_reference((hidden, weight, ids, mask, zero_adv, old, ref), old_logps=old)
    assert out.loss == 0 and out.clip_ratio == 0
    single = make_inputs(batch=1, length=1, hidden_size=5, vocab=3, seed=6, pad=False)
    check_against_reference(single, loss_type="bnpo", old_logps=single[5])
    nothing = make_inputs(batch=2, length=3, seed=7)
    nothing[3].zero_()  # no completion tokens at all: loss 0, gradients 0, no NaN
    out = check_against_reference(nothing, loss_type="grpo", old_logps=nothing[5])
    assert out.loss == 0


@pytest.mark.parametrize("shape,chunk_size", [((1, 47, 31, 123), None), ((3, 13, 8, 1000), 5),
                                              ((2, 1, 3, 2), 1), ((4, 9, 24, 77), 1000)])
def test_odd_shapes_and_chunkings(shape, chunk_size):
    batch, length, hidden_size, vocab = shape
    inputs = make_inputs(batch, length, hidden_size, vocab, seed=sum(shape))
    check_against_reference(inputs, chunk_size=chunk_size, old_logps=inputs[5], epsilon_low=0.1,
                            epsilon_high=0.3)


def test_grad_output_scaling_and_no_grad_mode():
    inputs = make_inputs(seed=8)
    hidden, weight, ids, mask, adv, old, ref = inputs
    (2.5 * grpo_loss(hidden, weight, ids, mask, adv, old_logps=old).loss).backward()
    expected = reference_grpo_loss(hidden, weight, ids, mask, adv, old_logps=old)[0]
    want_h, want_w = torch.autograd.grad(2.5 * expected, [hidden, weight])
    assert_close(hidden.grad, want_h, "scaled grad hidden")
    assert_close(weight.grad, want_w, "scaled grad weight")
    with torch.no_grad():
        out = grpo_loss(hidden, weight, ids, mask, adv, old_logps=old)
    assert not out.loss.requires_grad
    assert_close(out.loss, expected.detach(), "no-grad loss")


def test_bf16_inputs_follow_fp32_reference_loosely():
    hidden, weight, ids, mask, adv, old, ref = make_inputs(seed=9)
    h16 = hidden.detach().bfloat16().requires_grad_()
    w16 = weight.detach().bfloat16().requires_grad_()
    out = grpo_loss(h16, w16, ids, mask, adv, old_logps=old)
    out.loss.backward()
    assert h16.grad.dtype == torch.bfloat16 and w16.grad.dtype == torch.bfloat16
    expected = reference_grpo_loss(h16.detach().float().requires_grad_(), w16.detach().float(), ids, mask,
                                   adv, old_logps=old)
    assert_close(out.logps, expected[1], "bf16 logps", atol=5e-2)


def test_second_backward_is_refused_clearly():
    hidden, weight, ids, mask, adv, old, ref = make_inputs(seed=10)
    loss = grpo_loss(hidden, weight, ids, mask, adv).loss
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once"):
        loss.backward()


def test_chunks_never_build_full_logits(monkeypatch):
    """The torch path's biggest matmul result is one chunk of rows times V, never B * T * V."""
    hidden, weight, ids, mask, adv, old, ref = make_inputs(batch=4, length=10, vocab=50, seed=12)
    seen = []
    real_mm, real_matmul = torch.mm, torch.Tensor.__matmul__

    def spy_mm(a, b, **kwargs):
        out = real_mm(a, b, **kwargs)
        seen.append(out.numel())
        return out

    def spy_matmul(a, b):
        out = real_matmul(a, b)
        seen.append(out.numel())
        return out

    monkeypatch.setattr(torch, "mm", spy_mm)
    monkeypatch.setattr(torch.Tensor, "__matmul__", spy_matmul)
    grpo_loss(hidden, weight, ids, mask, adv, chunk_size=6).loss.backward()
    token_logprobs(hidden, weight, ids, chunk_size=6)
    grpo_loss(hidden.detach().bfloat16().requires_grad_(), weight.detach().bfloat16(), ids, mask, adv,
              chunk_size=6).loss.backward()
    assert len(seen) >= 3 * 7 and max(seen) <= 6 * 50


def test_the_config_offers_exactly_the_kernels_loss_types_and_levels():
    """engine/common/config.py stays torch-free, so it names the choices itself; they must be the kernel's."""
    from grpo_studio.engine.common import config
    from grpo_studio.kernels.loss import args as grpo_loss_args

    assert set(config.LOSS_TYPES) == set(grpo_loss_args.LOSS_TYPES)
    assert set(config.IMPORTANCE_SAMPLING_LEVELS) == set(grpo_loss_args.IMPORTANCE_SAMPLING_LEVELS)
    assert {t for t, n in grpo_loss_args.LOSS_TYPES.items() if n.per_token} == {"bnpo", "dapo", "cispo", "vespo"}


def test_default_chunk_bounds_logit_bytes():
    rows = grpo_loss_module._chunk_rows(None, 128256)
    assert 1 <= rows and rows * 128256 * 4 <= 2 * grpo_loss_module._CHUNK_BYTES


def test_default_chunks_keep_logits_under_16_mib(monkeypatch):
    """Without chunk_size, no matmul result (one chunk of fp32 logits) exceeds 16 MiB, even for Llama-3's
    128k vocabulary, and rows still go through several chunks rather than one [rows, V] block."""
    vocab, rows = 128256, 80
    gen = torch.Generator().manual_seed(14)
    hidden = torch.randn(2, rows // 2, 8, generator=gen, requires_grad=True)
    weight = torch.randn(vocab, 8, generator=gen) * 0.1
    ids = torch.randint(0, vocab, (2, rows // 2), generator=gen)
    seen = []
    real_mm = torch.mm

    def spy_mm(a, b, **kwargs):
        out = real_mm(a, b, **kwargs)
        seen.append(out.numel() * out.element_size())
        return out

    monkeypatch.setattr(torch, "mm", spy_mm)
    grpo_loss(hidden, weight, ids, torch.ones(2, rows // 2), torch.tensor([1.0, -1.0])).loss.backward()
    assert seen and max(seen) <= 16 * 2**20
    assert len([n for n in seen if n > 1 * 2**20]) >= 2  # the 80 rows' 41 MB of logits came in several chunks


BAD_CALLS = [
    (dict(loss_type="ppo"), "unknown loss_type"),
    (dict(loss_type="dr_grpo"), "max_completion_length"),
    (dict(beta=0.1), "ref_logps"),
    (dict(temperature=0.0), "temperature"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(old_logps=torch.zeros(3, 6)), "old_logps"),
    (dict(advantages=torch.zeros(3, 7)), "advantages"),
    (dict(completion_mask=torch.ones(3, 8)), "completion_mask"),
    (dict(weight=torch.zeros(37, 15)), "weight"),
    (dict(epsilon_low=-0.1), "epsilon"),
    (dict(importance_sampling_level="sentence"), "importance_sampling_level"),
]


@pytest.mark.parametrize("override,message", BAD_CALLS)
def test_invalid_arguments_raise_before_compute(override, message, monkeypatch):
    hidden, weight, ids, mask, adv, old, ref = make_inputs(seed=13)
    monkeypatch.setattr(grpo_loss_module, "_logprobs_and_grads", lambda *a, **k: pytest.fail("computed before checking"))
    args = dict(hidden=hidden, weight=weight, completion_ids=ids, completion_mask=mask, advantages=adv)
    kwargs = {k: v for k, v in override.items() if k not in args}
    args.update({k: v for k, v in override.items() if k in args})
    with pytest.raises(ValueError, match=message):
        grpo_loss(**args, **kwargs)
    with pytest.raises(ValueError, match="ids"):
        token_logprobs(hidden, weight, ids[:, :3])
