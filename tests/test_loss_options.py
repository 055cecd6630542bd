"""The loss options of TRL 1.16 (CISPO, SAPO, LUSPO, VESPO, top-entropy tokens, the entropy bonus, the
off-policy sequence mask, truncated importance sampling against the sampler's log-probs) on the torch path
against TRL's formula (trl_options_reference.py), their checks, and a TRL config loading with the same
meaning. The Triton kernels run the same cases in test_loss_options_triton.py."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from grpo_studio.engine.common.config import ConfigError, config_from_dict
from grpo_studio.engine.common.loss_settings import LOSS_TYPE_PAPERS, LossOptionSettings
from grpo_studio.kernels import grpo_loss
from grpo_studio.kernels.loss.terms import LossOptions
from loss_option_cases import CASES, run_case
from test_grpo_loss import make_inputs

TOLERANCE = 1e-5  # absolute, or relative to the value's size when that is above 1


def assert_matches(result: dict) -> None:
    bad = {k: v for k, v in result["diffs"].items() if not v <= TOLERANCE * max(1.0, result["scales"][k])}
    assert not bad, f"{result['case']}: off TRL's formula by {bad} (scales {result['scales']})"


@pytest.mark.parametrize("name", list(CASES))
def test_matches_trl_formula_torch_path(name):
    result = run_case(name)
    assert_matches(result)
    assert result["grad_norm"] > 0
    fields = CASES[name][4]
    # an option that is on must change the objective (the plain call is the kernel's default: no KL ratio)
    if fields and not name.startswith("kl-without-ratio"):
        assert abs(result["loss"] - result["loss_without_options"]) > 1e-4, f"{name}: the option had no effect"


def test_unchunked_and_single_row_chunks_agree():
    for chunk_size in (None, 1):
        assert_matches(run_case("everything", chunk_size=chunk_size))


def test_cases_exercise_the_clips_and_the_sampler_correction():
    """The inputs are built so each clip, cap and mask bites on some tokens, not all."""
    assert 0 < run_case("cispo-token-oldTrue")["clip_ratio"] < 1
    assert 0 < run_case("grpo-sequence-oldTrue")["clip_ratio"] < 1
    for mode in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"):
        result = run_case(f"tis-{mode}-dapo")
        assert 0 < result["sampler_capped"] < 1 and result["sampler_kl"] > 0
    assert run_case("dapo-token-oldTrue")["sampler_kl"] is None  # nothing to measure without the sampler's


def test_entropy_bonus_pushes_entropy_up():
    """A positive entropy_coef lowers the loss where entropy is higher: one gradient step on the hidden
    states with only the bonus (zero advantages) raises the mean entropy."""
    hidden, weight, ids, mask, _adv, _old, _ref = make_inputs(seed=5)
    zero = torch.zeros(hidden.shape[0])
    out = grpo_loss(hidden, weight, ids, mask, zero, with_entropy=True, options=LossOptions(entropy_coef=1.0))
    grad, = torch.autograd.grad(out.loss, [hidden])
    assert out.loss.item() == pytest.approx(-out.entropy.item(), abs=1e-6)
    after = grpo_loss(hidden.detach() - 0.5 * grad, weight.detach(), ids, mask, zero, with_entropy=True)
    assert after.entropy > out.entropy


BAD_OPTIONS = [
    (dict(top_entropy_quantile=1.5), "top_entropy_quantile"),
    (dict(off_policy_mask_threshold=-0.1), "off_policy_mask_threshold"),
    (dict(sapo_temperature_neg=0.0), "sapo_temperature"),
    (dict(sampling_correction="token"), "sampling correction mode"),
    (dict(sampling_correction="token_truncate", sampling_clip_max=None), "sampling_clip"),
    (dict(sampling_correction="token_mask", sampling_clip_min=2.0, sampling_clip_max=1.0), "less than"),
]


@pytest.mark.parametrize("options,message", BAD_OPTIONS + [("vespo", "VESPO"), ("shape", "sampling_logps")])
def test_bad_options_raise_before_compute(options, message, monkeypatch):
    import importlib

    module = importlib.import_module("grpo_studio.kernels.loss.functional")
    monkeypatch.setattr(module, "_logprobs_and_grads", lambda *a, **k: pytest.fail("computed before checking"))
    hidden, weight, ids, mask, adv, old, _ref = make_inputs(seed=6)
    kwargs = dict(sampling_logps=old)
    if options == "vespo":
        kwargs.update(loss_type="vespo", options=LossOptions(sampling_correction="sequence_mask"))
    elif options == "shape":
        kwargs.update(sampling_logps=old[:, :2], options=LossOptions(sampling_correction="token_mask"))
    else:
        kwargs["options"] = LossOptions(**options)
    with pytest.raises(ValueError, match=message):
        grpo_loss(hidden, weight, ids, mask, adv, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# The config: TRL's names, TRL's defaults, TRL's meaning

def test_defaults_are_trls():
    trl = pytest.importorskip("trl")
    trl_fields = {f.name: f for f in dataclasses.fields(trl.GRPOConfig)}
    for f in dataclasses.fields(LossOptionSettings):
        assert f.name in trl_fields, f"{f.name} is not a TRL GRPOConfig field"
        assert f.default == trl_fields[f.name].default, f.name
    assert set(LOSS_TYPE_PAPERS) == {"grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"}


def test_a_trl_config_loads_with_the_same_meaning(tmp_path):
    """A GRPOConfig that TRL accepts for these knobs: its fields, copied into the grpo section, load here,
    and the loss the run computes from them is TRL's formula with TRL's (post-init) values."""
    trl = pytest.importorskip("trl")
    knobs = dict(loss_type="sapo", sapo_temperature_pos=0.8, sapo_temperature_neg=1.3, top_entropy_quantile=0.5,
                 entropy_coef=0.02, use_adaptive_entropy=True, entropy_coef_min=0.01, entropy_coef_max=0.5,
                 entropy_coef_delta=0.01, entropy_target=0.4, off_policy_mask_threshold=0.02,
                 vllm_importance_sampling_correction=True, vllm_importance_sampling_mode="token_truncate",
                 vllm_importance_sampling_cap=1.25, vllm_importance_sampling_clip_min=0.8,
                 vespo_k_pos=1.5, vespo_lambda_neg=2.5, epsilon_high=0.28, beta=0.0)
    with pytest.warns(FutureWarning):  # TRL's own deprecation of the cap's name
        theirs = trl.GRPOConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, bf16=False, **knobs)
    ours = config_from_dict({"grpo": dict(knobs)}).grpo
    for f in dataclasses.fields(LossOptionSettings):
        if f.name != "vllm_importance_sampling_cap":  # folded into clip_max by both
            assert getattr(ours, f.name) == getattr(theirs, f.name), f.name
    assert ours.vllm_importance_sampling_clip_max == theirs.vllm_importance_sampling_clip_max == 1.25
    # the same run through the fused loss and through TRL's formula with TRL's config values
    from grpo_studio.engine.train.loss_control import loss_options
    from trl_options_reference import TRL_DEFAULTS, trl_loss

    hidden, weight, ids, mask, adv, old, _ref = make_inputs(batch=4, length=6, seed=9)
    sampling = old + 0.2 * torch.randn(old.shape, generator=torch.Generator().manual_seed(1))
    common = dict(old_logps=old, loss_type="sapo", epsilon_low=0.2, epsilon_high=0.28)
    mine = grpo_loss(hidden, weight, ids, mask, adv, sampling_logps=sampling,
                     options=loss_options(ours, ours.entropy_coef), **common)
    expected = trl_loss(hidden, weight, ids, mask, adv, sampling_logps=sampling,
                        trl_args={k: getattr(theirs, k) for k in TRL_DEFAULTS}, **common)
    assert abs(mine.loss.item() - expected[0].item()) < 1e-5


def test_config_checks_name_the_field():
    cases = [({"loss_type": "vespo", "vllm_importance_sampling_mode": "sequence_mask"}, "VESPO"),
             ({"vllm_importance_sampling_clip_min": 3.0}, "clip_min"),
             ({"vllm_importance_sampling_mode": "token_truncate", "vllm_importance_sampling_clip_max": None},
              "_truncate"),
             ({"use_adaptive_entropy": True, "entropy_coef_min": 0.5, "entropy_coef_max": 0.1}, "entropy_coef_min"),
             ({"top_entropy_quantile": 1.2}, "top_entropy_quantile"),
             ({"loss_type": "cisp"}, "did you mean 'cispo'")]
    for grpo, message in cases:
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"grpo": grpo})
    # VESPO with the correction off, or a token mode, is fine
    config_from_dict({"grpo": {"loss_type": "vespo", "vllm_importance_sampling_correction": False}})
    config_from_dict({"grpo": {"loss_type": "vespo", "vllm_importance_sampling_mode": "token_mask"}})


def test_the_estimator_counts_what_the_options_add():
    """Entropy-based options add per-row vectors and the torch path's p log p slice to the loss step; the
    sampler's own log-probs (fp32 training, another sampling dtype) add a [rows, V] pair per decode step."""
    from grpo_studio.engine.common.estimate_model import Arch, grpo_studio_plan
    from grpo_studio.engine.common.estimate import settings_from_config

    arch = Arch(layers=2, hidden=64, intermediate=128, heads=4, kv_heads=2, head_dim=16, vocab=50_000, tied=True)
    base = {"dtype": "float32", "grpo": {"vllm_importance_sampling_correction": False}}
    plain = grpo_studio_plan(arch, settings_from_config(config_from_dict(base)))["components"]
    entropy = grpo_studio_plan(arch, settings_from_config(config_from_dict(
        {**base, "grpo": {**base["grpo"], "top_entropy_quantile": 0.2}})))["components"]
    assert entropy["logits"] > plain["logits"] and entropy["generation_workspace"] == plain["generation_workspace"]
    sampler = config_from_dict({**base, "grpo": {"generation_dtype": "bfloat16"}})
    with_logps = grpo_studio_plan(arch, settings_from_config(sampler))["components"]
    s = settings_from_config(sampler)
    extra = 2 * s.generation_batch * arch.vocab * 4 + s.generation_batch * s.max_completion_length * 4
    assert with_logps["generation_workspace"] - plain["generation_workspace"] == extra
    same_dtype = config_from_dict({**base, "grpo": {"generation_dtype": "float32"}})
    assert grpo_studio_plan(arch, settings_from_config(same_dtype))["components"] == plain


def test_the_kernels_take_exactly_the_configs_choices():
    """The kernels cannot import the engine (nor common import the kernels' torch), so their own tuples of
    loss types, ratio levels and correction modes are held equal to the config's here."""
    from grpo_studio.engine.common.choices import IMPORTANCE_SAMPLING_LEVELS, LOSS_TYPES
    from grpo_studio.engine.common.loss_settings import SAMPLING_CORRECTION_MODES
    from grpo_studio.kernels.loss import args as grpo_loss_args
    from grpo_studio.kernels.loss import terms as grpo_loss_terms

    assert set(grpo_loss_args.LOSS_TYPES) == set(LOSS_TYPES)
    assert grpo_loss_args.IMPORTANCE_SAMPLING_LEVELS == IMPORTANCE_SAMPLING_LEVELS
    assert grpo_loss_terms.SAMPLING_CORRECTION_MODES == SAMPLING_CORRECTION_MODES
