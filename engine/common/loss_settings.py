"""The loss options of the `grpo:` section beyond clipping and KL (TRL 1.16's names and defaults, so a TRL
recipe's knobs load with the same meaning): the SAPO and VESPO parameters, the top-entropy token selection,
the entropy bonus and its adaptive control, the off-policy sequence mask and the sampler correction
(truncated importance sampling against the fast sampler's own log-probs). Torch-free: the GUI imports it.

GRPOSettings (config.py) inherits these fields; `loss_option_errors` is its cross-field check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grpo_studio.engine.common.config_fields import setting
from grpo_studio.engine.common.errors import FieldError

SAMPLING_CORRECTION_MODES = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")

# loss type -> (one-line explanation, paper) for the GUI and the docs
LOSS_TYPE_PAPERS = {
    "grpo": ("Per-sequence mean of the clipped token losses.", "DeepSeekMath, arXiv 2402.03300"),
    "bnpo": ("Mean over the micro-batch's completion tokens.", "TRL's batch normalisation (no paper)"),
    "dr_grpo": ("Sum / (batch x max_completion_length): no length bias.", "Dr. GRPO, arXiv 2503.20783"),
    "dapo": ("Sum / completion tokens of the whole batch: no length bias.", "DAPO, arXiv 2503.14476"),
    "cispo": ("Clips the importance weight itself (no gradient lost to the clip); set epsilon_high ~5.",
              "MiniMax-M1, arXiv 2506.13585"),
    "sapo": ("A smooth sigmoid gate instead of the hard clip (sapo_temperature_pos/neg).",
             "SAPO, arXiv 2511.20347"),
    "luspo": ("GSPO with each sequence's loss summed, i.e. scaled by its length; use the sequence level.",
              "LUSPO, arXiv 2602.05261"),
    "vespo": ("A smooth gamma weight of the sequence ratio instead of the clip (vespo_k/lambda).",
              "VESPO, arXiv 2602.10693"),
}


@dataclass
class LossOptionSettings:
    sapo_temperature_pos: float = setting(1.0, range=(1e-6, 100.0), help="SAPO: gate temperature for tokens "
                                       "with a positive advantage (arXiv 2511.20347).")
    sapo_temperature_neg: float = setting(1.05, range=(1e-6, 100.0), help="SAPO: gate temperature for tokens "
                                       "with a non-positive advantage.")
    vespo_k_pos: float = setting(2.0, range=(0.0, 100.0), help="VESPO: power k of the gamma weight for A >= 0 "
                              "(down-weights ratios below 1; arXiv 2602.10693).")
    vespo_lambda_pos: float = setting(3.0, range=(0.0, 100.0), help="VESPO: decay lambda for A >= 0 "
                                   "(down-weights ratios above 1).")
    vespo_k_neg: float = setting(3.0, range=(0.0, 100.0), help="VESPO: power k for A < 0.")
    vespo_lambda_neg: float = setting(2.0, range=(0.0, 100.0), help="VESPO: decay lambda for A < 0.")
    top_entropy_quantile: float = setting(1.0, range=(0.0, 1.0), help="Train only on this top share of tokens "
                                       "by entropy (1 = all; the paper uses 0.2; 'Beyond the 80/20 rule', "
                                       "arXiv 2506.01939).")
    entropy_coef: float = setting(0.0, range=(-10.0, 10.0), help="Entropy bonus: loss -= coef x mean token "
                               "entropy (0 = off). With adaptive entropy: the starting coefficient.")
    use_adaptive_entropy: bool = setting(False, help="Skywork-OR1's adaptive entropy control (arXiv 2505.22312): "
                                      "raise the coefficient while entropy is below the target, else lower it.")
    entropy_coef_min: float = setting(0.0, range=(-10.0, 10.0), help="Adaptive entropy: lowest coefficient.")
    entropy_coef_max: float = setting(1.0, range=(-10.0, 10.0), help="Adaptive entropy: highest coefficient.")
    entropy_coef_delta: float = setting(0.005, range=(0.0, 10.0), help="Adaptive entropy: change per step.")
    entropy_target: float = setting(0.2, range=(0.0, 100.0), help="Adaptive entropy: target mean token entropy "
                                 "(nats); the bonus applies only at or below it.")
    off_policy_mask_threshold: float | None = setting(None, range=(0.0, None), help="Drop sequences with a "
                                                   "negative advantage whose mean log-ratio of the sampler "
                                                   "to the current policy exceeds this (DeepSeek-V3.2, "
                                                   "arXiv 2512.02556; empty = off).")
    vllm_importance_sampling_correction: bool = setting(True, help="Correct the mismatch between the sampler's "
                                                     "log-probs (bf16 fast path) and the training forward's "
                                                     "with truncated importance sampling (TRL's name).")
    vllm_importance_sampling_mode: str = setting("sequence_mask", choices=SAMPLING_CORRECTION_MODES,
                                              help="Token or sequence ratio; truncate it to the bounds, or "
                                                   "mask tokens / sequences outside them (TRL's default).")
    vllm_importance_sampling_clip_max: float | None = setting(3.0, range=(0.0, None), help="Upper bound of the "
                                                           "sampler correction's ratio (empty = none).")
    vllm_importance_sampling_clip_min: float | None = setting(None, range=(0.0, None), help="Lower bound of the "
                                                           "sampler correction's ratio (empty = none).")
    use_bias_correction_kl: bool = setting(True, help="Multiply the KL term by the importance ratio, so its "
                                        "gradient is the unbiased reverse-KL one (DeepSeek-V3.2; TRL's default; "
                                        "only with beta > 0).")
    vllm_importance_sampling_cap: float | None = setting(None, range=(0.0, None), help="TRL's deprecated name "
                                                      "for vllm_importance_sampling_clip_max (wins when set).")

    def __post_init__(self) -> None:
        if self.vllm_importance_sampling_cap is not None:  # TRL's deprecated alias, same meaning
            self.vllm_importance_sampling_clip_max = self.vllm_importance_sampling_cap
            self.vllm_importance_sampling_cap = None  # one field holds the bound from here on (GUI, YAML)

    @property
    def sampling_correction(self) -> str | None:
        """The correction mode the loss applies (None when switched off)."""
        return self.vllm_importance_sampling_mode if self.vllm_importance_sampling_correction else None


def loss_option_errors(grpo: Any) -> list[FieldError]:
    """Cross-field problems of the loss options (config.py's validation adds them to its list)."""
    errors = []
    lo, hi = grpo.vllm_importance_sampling_clip_min, grpo.vllm_importance_sampling_clip_max
    if lo is not None and hi is not None and lo >= hi:
        errors.append(FieldError("grpo.vllm_importance_sampling_clip_min",
                                 f"{lo} must be less than grpo.vllm_importance_sampling_clip_max ({hi})"))
    mode = grpo.sampling_correction
    if mode and mode.endswith("truncate") and lo is None and hi is None:
        errors.append(FieldError("grpo.vllm_importance_sampling_mode", "a *_truncate mode needs "
                                 "vllm_importance_sampling_clip_min or _clip_max"))
    if grpo.loss_type == "vespo" and mode and mode.startswith("sequence"):
        errors.append(FieldError("grpo.vllm_importance_sampling_mode", "VESPO needs token_truncate or token_mask (it "
                                 "folds the correction into its weight token by token, as TRL requires), or the "
                                 "correction off"))
    if grpo.use_adaptive_entropy and grpo.entropy_coef_min > grpo.entropy_coef_max:
        errors.append(FieldError("grpo.entropy_coef_min", "must not exceed grpo.entropy_coef_max"))
    return errors
