"""Alarms for reward hacking and collapse: trends that only show against the run's own start, in words, each
with the setting to change. Torch-free and Qt-free, so the Monitor's Learning-signal card, the terminal and
the tray say the same thing (signal_hints.py says what one window of steps shows; this module compares).

    Alarms().see(event)   folds metrics events (and `eval` events of held-out evaluation) as they come
    Alarms().hints()      the alarms that hold now, as signal_hints.Hint (keys in ALARM_KEYS)

The baseline is the mean of the first BASELINE steps that carry a `signal`; "recent" the last RECENT steps.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from grpo_studio.engine.common.event_types import Eval, Metrics, event_as
from grpo_studio.engine.common.signal_hints import Hint, _mean

BASELINE = 10  # first steps: what the run looked like before it learned anything
RECENT = 10  # last steps compared with the baseline (so an alarm needs BASELINE + RECENT steps)
LENGTH_GROWTH = 2.0  # recent mean completion length at least this many times the baseline's...
LENGTH_SHRINK = 0.5  # ...or at most this share of it
MIN_LENGTH_CHANGE = 2.0  # tokens: a 1-token answer growing to 2 is no runaway
REPEATS = 0.3  # share of a completion's n-grams that repeat an earlier one in it
REPEATS_RISE = 0.15  # above the baseline's share by at least this
ENTROPY_DROP = 0.3  # recent token entropy at most this share of the baseline's
MIN_BASE_ENTROPY = 0.05  # below it there is nothing left to collapse (signal_hints' low-entropy hint says so)
KL_HIGH = 0.1  # nats per token: above it the policy has moved far from the reference...
KL_GROWTH = 2.0  # ...and it got there during the run: at least this many times the baseline's
EVAL_WINDOW = 3  # held-out accuracy is compared as running means over this many evaluations (one is noisy)
EVAL_DROP = 0.1  # the latest running mean this far below the best earlier one...
REWARD_RISE = 0.05  # ...while the training reward rose at least this much since that best one
ALARM_KEYS = ("length_runaway", "length_collapse", "repetition", "entropy_collapse", "kl_runaway",
              "reward_hacking")


def _length(metrics_event: Metrics) -> float | None:
    value = (metrics_event.get("completion_length") or {}).get("mean")
    return float(value) if isinstance(value, (int, float)) else None


class Alarms:
    """Folds one run's events (in order, each once) and says which alarms hold."""

    def __init__(self) -> None:
        self.baseline: list[Metrics] = []
        self.recent: deque[Metrics] = deque(maxlen=RECENT)
        self.evals: list[tuple[int, float, float | None]] = []  # (step, accuracy, training reward then)

    def see(self, event: Mapping[str, Any]) -> None:
        metrics, held_out = event_as(event, Metrics), event_as(event, Eval)
        if metrics is not None and metrics.get("signal") is not None:
            if len(self.baseline) < BASELINE:
                self.baseline.append(metrics)
                return
            self.recent.append(metrics)
        elif held_out is not None and (accuracy := held_out.get("accuracy")) is not None \
                and (step := held_out.get("step")) is not None:
            window = list(self.recent) or self.baseline[-RECENT:]
            self.evals.append((step, float(accuracy), _mean([m.get("reward") for m in window])))

    def see_all(self, events: Iterable[dict]) -> Alarms:
        for event in events:
            self.see(event)
        return self

    def hints(self) -> list[Hint]:
        found = [self._reward_hacking()]
        if len(self.recent) == RECENT:
            found += [self._length(), self._repetition(), self._entropy(), self._kl()]
        return [h for h in found if h is not None]

    # ------------------------------------------------------------------------------------------ alarms
    def _means(self, pick) -> tuple[float | None, float | None]:
        return _mean([pick(m) for m in self.baseline]), _mean([pick(m) for m in self.recent])

    def _length(self) -> Hint | None:
        base, now = self._means(_length)
        if base is None or now is None or abs(now - base) < MIN_LENGTH_CHANGE:
            return None
        span = f"from {base:.0f} to {now:.0f} tokens on average since the first {BASELINE} steps"
        if now >= LENGTH_GROWTH * base:
            cut = _mean([m["signal"].get("truncated") for m in self.recent])
            cut_text = f", {cut:.0%} of them cut off" if cut else ""
            return Hint("length_runaway", f"Completion length is running away ({span}{cut_text}): longer text can "
                                          "be a reward hack. Read them in the Samples tab, and add or weigh up the "
                                          "length penalty (reward `length`) or lower grpo.max_completion_length.")
        if now <= LENGTH_SHRINK * base:
            return Hint("length_collapse", f"Completion length is collapsing ({span}): a reward may pay for saying "
                                           "little. Check the rewards with `grpo-studio try-rewards`, and lower "
                                           "optim.learning_rate or raise grpo.beta to keep the model near its start.")
        return None

    def _repetition(self) -> Hint | None:
        base, now = self._means(lambda m: m["signal"].get("repeated_ngrams"))
        if base is None or now is None or now < REPEATS or now < base + REPEATS_RISE:
            return None
        return Hint("repetition", f"Completions repeat themselves: {now:.0%} of their 4-token n-grams repeat an "
                                  f"earlier one (was {base:.0%}). Raise grpo.repetition_penalty (e.g. 1.1), add the "
                                  "length penalty (reward `length`), or lower optim.learning_rate.")

    def _entropy(self) -> Hint | None:
        base, now = self._means(lambda m: m["signal"].get("entropy"))
        if base is None or now is None or base < MIN_BASE_ENTROPY or now > ENTROPY_DROP * base:
            return None
        return Hint("entropy_collapse", f"Token entropy has collapsed from {base:.3f} to {now:.3f} nats: sampling has "
                                        "stopped exploring, so a group's completions converge and stop teaching. "
                                        "Raise grpo.temperature or grpo.beta, or lower optim.learning_rate.")

    def _kl(self) -> Hint | None:
        base, now = self._means(lambda m: m.get("kl"))
        if base is None or now is None or now < KL_HIGH or now < KL_GROWTH * base:
            return None
        return Hint("kl_runaway", f"KL to the base model is running away ({base:.3f} → {now:.3f} nats per token "
                                  f"since the first {BASELINE} steps): the policy drifts far from where it "
                                  "started. Raise grpo.beta or lower optim.learning_rate.")

    def _reward_hacking(self) -> Hint | None:
        if len(self.evals) <= EVAL_WINDOW:
            return None
        windows = [self.evals[i - EVAL_WINDOW:i] for i in range(EVAL_WINDOW, len(self.evals) + 1)]
        accuracy = [sum(e[1] for e in w) / EVAL_WINDOW for w in windows]
        best = max(range(len(windows) - 1), key=lambda i: accuracy[i])
        then, now = windows[best][-1], windows[-1][-1]  # (step, accuracy, training reward) at each one's end
        if accuracy[-1] > accuracy[best] - EVAL_DROP or now[2] is None or then[2] is None \
                or now[2] < then[2] + REWARD_RISE:
            return None
        return Hint("reward_hacking", f"Training reward rose ({then[2]:.3f} → {now[2]:.3f}) while held-out accuracy "
                                      f"fell ({accuracy[best]:.0%} up to step {then[0]} → {accuracy[-1]:.0%} up to "
                                      f"step {now[0]}, each the mean of {EVAL_WINDOW} evaluations): the model is "
                                      "likely gaming a reward, not solving the task. Read the Samples tab, tighten "
                                      "the reward functions (rewards), lower optim.learning_rate, and keep a "
                                      f"checkpoint from near step {then[0]}.")
