"""What a finished step tells its watchers: the `metrics` event (rewards, loss, the learning signal), and now and
then one completion (`sample`) with its whole group (`group`). Read off the step's results; changes nothing."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grpo_studio.engine.common.config import GRPOSettings
from grpo_studio.engine.common.groups import prompt_of
from grpo_studio.engine.rollout.generation import completion_token_ids
from grpo_studio.engine.train import loss_control, rank_state
from grpo_studio.engine.train.diagnostics import repeated_ngrams, step_signal
from grpo_studio.engine.train.dynamic_sampling import ScoredBatch
from grpo_studio.engine.train.sample_group import group_fields
from grpo_studio.engine.train.step_metrics import UpdateResult, nan_mean, nan_std, reward_stats, reward_tensor

Emit = Callable[..., Any]


def emit_metrics(emit: Emit, step: int, grpo: GRPOSettings, update: UpdateResult, drawn: Sequence[ScoredBatch],
                 resampling: Any = None) -> None:
    """Rewards and the signal are measured on the first draw of prompts: with dynamic sampling the trained batch
    is chosen for its spread, so its reward would not say how well the model does. With several ranks they
    cover every rank's completions."""
    first_scores, lengths, truncated = rank_state.step_view(drawn[0].scores, drawn[0].rollout)
    rewards = reward_tensor(first_scores.total)
    signal = step_signal(first_scores.total, grpo.num_generations, first_scores.per_function, truncated,
                         first_scores.failures)
    signal["entropy"] = update.entropy
    signal["repeated_ngrams"] = repeated_ngrams(completion_token_ids(drawn[0].rollout))  # this rank's
    signal.update(loss_control.update_signal(update))  # the sampler mismatch and the entropy bonus, where measured
    if resampling is not None:
        signal["dynamic_sampling"] = resampling.as_dict()
    emit("metrics", step=step, reward=nan_mean(rewards), reward_std=nan_std(rewards),
         rewards={name: reward_stats(values) for name, values in first_scores.per_function.items()},
         loss=update.loss, kl=update.kl if grpo.beta > 0 else None,  # no reference pass, nothing measured
         clip_ratio=update.clip_ratio,
         completion_length={"mean": lengths.mean().item(), "max": int(lengths.max().item())},
         lr=update.lr, grad_norm=update.grad_norm, signal=signal)


def emit_sample(emit: Emit, step: int, batch: ScoredBatch, examples: Sequence[Any], advantages: Any,
                G: int) -> None:
    """One completion of the trained batch and its group, chosen by the step number (no RNG is touched)."""
    rollout, scores = batch.rollout, batch.scores
    i = (step * 7) % rollout.size
    group = prompt_of(i, G)
    example = examples[batch.indices[group]]
    emit("sample", step=step, prompt=example.prompt_text, completion=rollout.texts[i],
         rewards={name: values[i] for name, values in scores.per_function.items()}, reward=scores.total[i])
    emit("group", step=step, **group_fields(
        group, G, example.prompt_text, rollout.texts, scores.per_function, scores.total, advantages,
        rollout.completion_mask.sum(1).tolist(), [] if rollout.truncated is None else rollout.truncated.tolist()))
