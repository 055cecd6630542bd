"""The loss options in the training loop: the fused loss's LossOptions for a micro-batch (the entropy bonus
scaled the way TRL scales it), the adaptive entropy controller (Skywork-OR1, as in TRL 1.16: its state is
part of every checkpoint, so a resumed run goes on exactly), and the step's sampler-mismatch metrics."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from grpo_studio.kernels import GRPOLossOutput, grpo_loss
from grpo_studio.kernels.loss.terms import LossOptions


class EntropyControl:
    """The entropy bonus's coefficient. Static: entropy_coef. Adaptive: the coefficient moves by
    entropy_coef_delta after every optimizer step (up while the step's mean entropy over the policy loss's
    tokens is at or below entropy_target, down otherwise, within [min, max]) and is applied only while the
    last step's entropy was at or below the target (none before the first measurement)."""

    def __init__(self, grpo: Any) -> None:
        self.grpo = grpo
        self.coef = float(grpo.entropy_coef)
        self.last_entropy = math.inf
        self._sum = self._count = 0.0

    @property
    def enabled(self) -> bool:
        return self.grpo.entropy_coef != 0.0 or self.grpo.use_adaptive_entropy

    def applied(self) -> float:
        if self.grpo.use_adaptive_entropy:
            return self.coef if self.last_entropy <= self.grpo.entropy_target else 0.0
        return self.coef

    def observe(self, out: GRPOLossOutput) -> None:
        """One micro-batch's mean entropy over the tokens the policy loss uses, weighted by their number."""
        if out.selected_entropy is not None and out.selected_tokens is not None:
            tokens = out.selected_tokens.item()
            self._sum += out.selected_entropy.item() * tokens
            self._count += tokens

    def end_step(self) -> None:
        """After the optimizer step: the window's token-weighted entropy moves the coefficient."""
        if not self.grpo.use_adaptive_entropy:
            return
        entropy = self._sum / max(self._count, 1.0)
        g = self.grpo
        if entropy <= g.entropy_target:
            self.coef = min(self.coef + g.entropy_coef_delta, g.entropy_coef_max)
        else:
            self.coef = max(self.coef - g.entropy_coef_delta, g.entropy_coef_min)
        self.last_entropy = entropy
        self._sum = self._count = 0.0

    def state_dict(self) -> dict:
        return {"entropy_coef": self.coef, "last_world_entropy": self.last_entropy}

    def load_state_dict(self, state: dict | None) -> None:
        if state:  # checkpoints from before the controller carry none: keep the configured start
            self.coef = float(state["entropy_coef"])
            self.last_entropy = float(state["last_world_entropy"])


def loss_options(grpo: Any, entropy_coef: float = 0.0) -> LossOptions:
    """The kernel's LossOptions from the config's grpo section (TRL's field names)."""
    return LossOptions(
        sapo_temperature_pos=grpo.sapo_temperature_pos, sapo_temperature_neg=grpo.sapo_temperature_neg,
        vespo_k_pos=grpo.vespo_k_pos, vespo_lambda_pos=grpo.vespo_lambda_pos, vespo_k_neg=grpo.vespo_k_neg,
        vespo_lambda_neg=grpo.vespo_lambda_neg, top_entropy_quantile=grpo.top_entropy_quantile,
        entropy_coef=entropy_coef, off_policy_mask_threshold=grpo.off_policy_mask_threshold,
        sampling_correction=grpo.sampling_correction, sampling_clip_min=grpo.vllm_importance_sampling_clip_min,
        sampling_clip_max=grpo.vllm_importance_sampling_clip_max, use_bias_correction_kl=grpo.use_bias_correction_kl)


def micro_batch_options(options: LossOptions, coef: float, micro_batches: int, weight: float) -> LossOptions:
    """The options for one micro-batch whose loss the loop scales by `weight`: TRL adds the bonus as
    -coef x (that micro-batch's mean entropy) / (micro-batches per step) whatever the loss type's
    normaliser, so the kernel gets coef / (micro-batches x weight)."""
    if coef == 0.0 or weight <= 0.0:  # a micro-batch without tokens has no entropy to reward
        return dataclasses.replace(options, entropy_coef=0.0)
    return dataclasses.replace(options, entropy_coef=coef / (micro_batches * weight))


def micro_batch_loss(hidden, weight, mb: Any, grpo: Any, with_entropy: bool, options: LossOptions) -> GRPOLossOutput:
    """The fused loss of one micro-batch (loop.MicroBatch) with the run's settings."""
    return grpo_loss(hidden, weight, mb.completion_ids, mb.completion_mask, mb.advantages, old_logps=mb.old_logps,
                     ref_logps=mb.ref_logps, beta=grpo.beta, epsilon_low=grpo.epsilon_low,
                     epsilon_high=grpo.epsilon_high, loss_type=grpo.loss_type,
                     max_completion_length=grpo.max_completion_length, temperature=grpo.temperature,
                     chunk_size=grpo.chunk_size, importance_sampling_level=grpo.importance_sampling_level,
                     with_entropy=with_entropy, sampling_logps=mb.sampling_logps, options=options)


class SamplerMismatch:
    """The sampler/trainer mismatch over one update's micro-batches, token-weighted (None when the
    sampler's log-probs were not there or the correction is off: nothing measured)."""

    def __init__(self) -> None:
        self.kl = self.capped = self.share = 0.0

    def add(self, out: GRPOLossOutput, share: float) -> None:
        if out.sampler_kl is not None and out.sampler_capped is not None:  # measured together
            self.kl += out.sampler_kl.item() * share
            self.capped += out.sampler_capped.item() * share
            self.share += share

    def means(self) -> tuple[float | None, float | None]:
        if not self.share:
            return None, None
        return self.kl / self.share, self.capped / self.share


def update_signal(update: Any) -> dict:
    """The step's learning-signal fields these options add (only those measured)."""
    fields = {"sampler_kl": update.sampler_kl, "sampler_capped": update.sampler_capped,
              "entropy_coef": update.entropy_coef}
    return {name: value for name, value in fields.items() if value is not None}
