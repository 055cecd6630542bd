"""The loss-option cases both backends are checked on against TRL's formula (trl_options_reference.py):
every loss type at token and sequence level, on- and off-policy (mu > 1: old log-probs drift from the
policy), with KL, and each option alone and combined, on ragged masks. Shared by test_loss_options.py
(torch path) and test_loss_options_triton.py (the Triton kernels in the interpreter)."""
from __future__ import annotations

import itertools

import torch

from grpo_studio.engine.common.config import config_from_dict
from grpo_studio.engine.train.loss_control import loss_options
from grpo_studio.kernels import grpo_loss
from test_grpo_loss import make_inputs
from trl_options_reference import trl_loss

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
TIS = dict(vllm_importance_sampling_correction=True, vllm_importance_sampling_clip_min=0.8,
           vllm_importance_sampling_clip_max=1.25)

# name -> (loss type, importance_sampling_level, old log-probs given, beta, TRL option fields, sampler logps)
CASES = {f"{lt}-{level}-old{old}": (lt, level, old, 0.05 if old else 0.0, {}, False)
         for lt, level, old in itertools.product(LOSS_TYPES, ("token", "sequence"), (True, False))}
CASES.update({
    "cispo-eps5": ("cispo", "token", True, 0.0, {}, False),
    # TRL 1.16 multiplies the KL term by the (differentiable) ratio by default; on-policy too, and without
    "kl-ratio-on-policy-token": ("dapo", "token", False, 0.1, {}, False),
    "kl-ratio-on-policy-gspo": ("grpo", "sequence", False, 0.1, {}, False),
    "kl-without-ratio-token": ("dapo", "token", True, 0.1, dict(use_bias_correction_kl=False), False),
    "kl-without-ratio-gspo": ("grpo", "sequence", True, 0.1, dict(use_bias_correction_kl=False), False),  # epsilon_high set below: the clip on the weight
    "sapo-temperatures": ("sapo", "token", True, 0.0, dict(sapo_temperature_pos=0.7, sapo_temperature_neg=2.0),
                          False),
    "vespo-params": ("vespo", "token", True, 0.0, dict(vespo_k_pos=1.0, vespo_lambda_pos=1.5, vespo_k_neg=4.0,
                                                       vespo_lambda_neg=0.5), False),
    "top-entropy-dapo": ("dapo", "token", True, 0.0, dict(top_entropy_quantile=0.3), False),
    "top-entropy-gspo": ("grpo", "sequence", True, 0.05, dict(top_entropy_quantile=0.5), False),
    "top-entropy-zero": ("dapo", "token", False, 0.0, dict(top_entropy_quantile=0.0), False),
    "entropy-coef-on-policy": ("dapo", "token", False, 0.0, dict(entropy_coef=0.05), False),
    "entropy-coef-grpo": ("grpo", "token", True, 0.05, dict(entropy_coef=0.1), False),
    "entropy-coef-top-entropy": ("sapo", "token", True, 0.0, dict(entropy_coef=0.1, top_entropy_quantile=0.4),
                                 False),
    "off-policy-mask-old": ("dapo", "token", True, 0.0, dict(off_policy_mask_threshold=0.02), False),
    "off-policy-mask-sampler": ("grpo", "sequence", False, 0.0, dict(off_policy_mask_threshold=0.02), True),
    **{f"tis-{mode}-{lt}": (lt, "token", old, 0.05 if old else 0.0,
                            dict(TIS, vllm_importance_sampling_mode=mode), True)
       for mode in ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
       for lt, old in (("dapo", False), ("grpo", True), ("cispo", True))},
    "tis-token_truncate-vespo": ("vespo", "token", True, 0.0,
                                 dict(TIS, vllm_importance_sampling_mode="token_truncate"), True),
    "tis-token_mask-vespo-on-policy": ("vespo", "token", False, 0.0,
                                       dict(TIS, vllm_importance_sampling_mode="token_mask"), True),
    "tis-gspo-sequence_truncate": ("luspo", "sequence", True, 0.0,
                                   dict(TIS, vllm_importance_sampling_mode="sequence_truncate"), True),
    "everything": ("dapo", "token", True, 0.05, dict(TIS, vllm_importance_sampling_mode="token_truncate",
                                                     off_policy_mask_threshold=0.02, top_entropy_quantile=0.5,
                                                     entropy_coef=0.03), True),
})


def run_case(name: str, chunk_size: int | None = 5) -> dict:
    """Ours (through the config, as a run gets it) against TRL's formula: max abs diffs and a few values."""
    loss_type, level, with_old, beta, fields, with_sampler = CASES[name]
    hidden, weight, ids, mask, adv, old, ref = make_inputs(batch=4, length=6, seed=sum(map(ord, name)) % 97)
    old = old + torch.tensor([0.3, -0.3, 0.05, 0.0])[:, None]  # whole sequences drift too (sequence level)
    gen = torch.Generator().manual_seed(7)
    # the sampler drifts from the training forward by token and by sequence (so masks and caps bite)
    sampling = ((old if with_old else ref) + 0.15 * torch.randn(old.shape, generator=gen)
                + torch.tensor([0.2, -0.1, 0.1, 0.0])[:, None]) if with_sampler else None
    eps_high = 5.0 if name == "cispo-eps5" else 0.28
    grpo = {"loss_type": loss_type, "importance_sampling_level": level, "beta": beta, "epsilon_low": 0.2,
            "epsilon_high": eps_high, "max_completion_length": 9,
            "vllm_importance_sampling_correction": False, **fields}
    config = config_from_dict({"grpo": grpo}).grpo
    kw = dict(old_logps=old if with_old else None, ref_logps=ref if beta else None, beta=beta, epsilon_low=0.2,
              epsilon_high=eps_high, loss_type=loss_type, max_completion_length=9, importance_sampling_level=level)
    ours = grpo_loss(hidden, weight, ids, mask, adv, chunk_size=chunk_size, sampling_logps=sampling,
                     options=loss_options(config, config.entropy_coef), **kw)
    ours_grads = torch.autograd.grad(ours.loss, [hidden, weight])
    trl_fields = {k: v for k, v in grpo.items() if k not in ("loss_type", "importance_sampling_level", "beta",
                                                             "epsilon_low", "epsilon_high",
                                                             "max_completion_length")}
    expected = trl_loss(hidden, weight, ids, mask, adv, sampling_logps=sampling, trl_args=trl_fields, **kw)
    expected_grads = torch.autograd.grad(expected[0], [hidden, weight])
    diffs = {"loss": (ours.loss - expected[0]).abs().item(), "logps": (ours.logps - expected[1]).abs().max().item(),
             "clip_ratio": (ours.clip_ratio - expected[2]).abs().item(),
             "grad_hidden": (ours_grads[0] - expected_grads[0]).abs().max().item(),
             "grad_weight": (ours_grads[1] - expected_grads[1]).abs().max().item()}
    # how large the compared values are (the tolerance is relative for large ones: VESPO's weight can be big)
    scales = {"loss": abs(expected[0].item()), "logps": 1.0, "clip_ratio": 1.0,
              "grad_hidden": expected_grads[0].abs().max().item(), "grad_weight": expected_grads[1].abs().max().item()}
    finite = all(torch.isfinite(t).all() for t in (ours.loss, *ours_grads))
    plain = grpo_loss(hidden.detach(), weight.detach(), ids, mask, adv, **kw).loss  # the same call, no options
    return {"case": name, "diffs": diffs if finite else {k: float("inf") for k in diffs}, "scales": scales,
            "loss": ours.loss.item(), "loss_without_options": plain.item(), "clip_ratio": ours.clip_ratio.item(),
            "grad_norm": float(sum(g.abs().sum() for g in ours_grads)),
            "sampler_kl": None if ours.sampler_kl is None else ours.sampler_kl.item(),
            "sampler_capped": None if ours.sampler_capped is None else ours.sampler_capped.item()}
