"""Why a run is (not) learning, in words: advice from the learning-signal numbers of recent metrics events
(engine/train/diagnostics.py puts them in every step's `signal`). Torch-free and Qt-free, so the Monitor's card
(gui/learning_signal.py), the terminal and the tray say the same thing.

    signal_hints(metrics_events)          -> the hints that hold over the last WINDOW steps
    HintWatcher().update(event)           -> hints and alarms (alarms.py) that hold for the first time (the
                                             terminal and the tray say each once)
    PlateauWatch(patience).update(event)  -> a text once the mean reward has not improved for `patience` steps
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from grpo_studio.engine.common.event_types import Metrics

WINDOW = 10  # steps the hints average over
MIN_STEPS = 3  # no advice from fewer steps than this
FLAT_GROUPS = 0.5  # share of groups with identical rewards from which it is worth saying
TRUNCATED = 0.3
NOT_APPLIED = 0.9
FAILED = 0.05
LOW_ENTROPY = 0.05  # nats per token
SAMPLER_CAPPED = 0.2  # share of tokens the sampler correction truncated or masked from which it is worth saying
SMOOTHING = 10  # steps in the running mean the plateau watch compares


@dataclass(frozen=True)
class Hint:
    key: str  # the condition ("flat_groups", "truncated", "reward_none:NAME", ...): one hint per key
    text: str


def _mean(values: Sequence) -> float | None:
    present = [v for v in values if isinstance(v, (int, float))]
    return sum(present) / len(present) if present else None


def _short(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def signal_hints(metrics: Sequence[Metrics], window: int = WINDOW) -> list[Hint]:
    """Hints for the last `window` metrics events that carry a `signal` (older runs have none: no hints)."""
    recent = [m for m in metrics if isinstance(m.get("signal"), dict)][-window:]
    if len(recent) < MIN_STEPS:
        return []
    signals = [m["signal"] for m in recent]
    diverging = _diverging(recent)
    if diverging:  # cut or alike completions are then symptoms: the cause is the step size
        return [diverging] + _reward_functions(recent, signals)
    hints = [h for h in (_flat_groups(recent, signals), _truncated(recent, signals), _entropy(signals),
                         _sampler_mismatch(signals)) if h]
    return hints + _reward_functions(recent, signals)


GRAD_BLOWUP = 10.0  # the gradient norm grew this many times within the window


def _diverging(recent: list[Metrics]) -> Hint | None:
    """The reward falls while the gradient norm explodes: the updates are too large (the learning rate)."""
    pairs = [(m.get("reward"), m.get("grad_norm")) for m in recent]
    rows = [(r, g) for r, g in pairs if isinstance(r, (int, float)) and isinstance(g, (int, float))]
    if len(rows) < 4:
        return None
    half = len(rows) // 2
    rewards = [r for r, _ in rows]
    before, after = _mean(rewards[:half]), _mean(rewards[half:])
    falling = before is not None and after is not None \
        and before - after > max(1e-6, 0.25 * (max(rewards) - min(rewards)))
    first = min((g for _, g in rows[:half] if g > 0), default=None)
    peak = max(g for _, g in rows[half:])
    if not falling or first is None or peak < GRAD_BLOWUP * first:
        return None
    lr = recent[-1].get("lr")
    at = f" ({lr:g})" if isinstance(lr, (int, float)) else ""
    return Hint("diverging", f"The reward is falling ({before:.3f} → {after:.3f}) while the gradient norm exploded "
                             f"({first:.3g} → {peak:.3g}): the learning rate{at} is too high for this model; "
                             "lower learning_rate (e.g. 10×) and start again or resume from an earlier checkpoint.")


def _flat_groups(recent: list[Metrics], signals: list[dict]) -> Hint | None:
    share = _mean([s.get("zero_spread_groups") for s in signals])
    if share is None or share < FLAT_GROUPS:
        return None
    flat_reward = _mean([s.get("zero_spread_reward") for s in signals])
    reward = _mean([m.get("reward") for m in recent])
    if flat_reward is not None and reward is not None and abs(flat_reward - reward) > 1e-9:
        why = ("mostly failed alike: the task looks too hard for this model" if flat_reward < reward
               else "mostly passed alike: the task looks too easy for this model")
    else:
        why = "the task is too hard (all 0) or too easy (all 1) for this model"
    text = f"{share:.0%} of groups got identical rewards ({why}), so they teach nothing"
    resampling = [s["dynamic_sampling"] for s in signals if isinstance(s.get("dynamic_sampling"), dict)]
    if resampling:
        rounds = _mean([r.get("rounds") for r in resampling]) or 0.0
        text += (f"; dynamic sampling replaces them ({rounds:.1f} extra generation rounds a step): easier data "
                 "or a partial-credit reward would waste less generation")
    else:
        text += "; try dynamic sampling (grpo.dynamic_sampling), easier data or a partial-credit reward"
    return Hint("flat_groups", text + ".")


def _truncated(recent: list[Metrics], signals: list[dict]) -> Hint | None:
    share = _mean([s.get("truncated") for s in signals])
    if share is None or share < TRUNCATED:
        return None
    longest = max((int((m.get("completion_length") or {}).get("max") or 0) for m in recent), default=0)
    at = f" at {longest} tokens" if longest else ""
    return Hint("truncated", f"{share:.0%} of completions were cut{at} before they ended: raise "
                             "grpo.max_completion_length or add the length penalty (reward `length`).")


def _entropy(signals: list[dict]) -> Hint | None:
    entropy = _mean([s.get("entropy") for s in signals])
    if entropy is None or entropy >= LOW_ENTROPY:
        return None
    return Hint("entropy", f"Sampling has almost no randomness left (mean token entropy {entropy:.3f}): the "
                           "completions of a group look alike; raise grpo.temperature, or the run has converged.")


def _sampler_mismatch(signals: list[dict]) -> Hint | None:
    capped = _mean([s.get("sampler_capped") for s in signals])
    if capped is None or capped < SAMPLER_CAPPED:
        return None
    kl = _mean([s.get("sampler_kl") for s in signals]) or 0.0
    return Hint("sampler_mismatch", f"The bf16 sampler and the training forward disagree: the sampler correction "
                                    f"capped or masked {capped:.0%} of tokens (KL {kl:.3g} per token), so those "
                                    "teach less; sample in the training dtype (grpo.generation_dtype) or use a "
                                    "token-level or truncating grpo.vllm_importance_sampling_mode.")


def _reward_functions(recent: list[Metrics], signals: list[dict]) -> list[Hint]:
    names: dict[str, None] = {}
    for s in signals:
        names.update(dict.fromkeys(s.get("rewards") or {}))
    hints = []
    for name in names:
        rows = [(s.get("rewards") or {}).get(name) or {} for s in signals]
        none, failed = _mean([r.get("none") for r in rows]), _mean([r.get("failed") for r in rows])
        zero = [r.get("zero") for r in rows]
        if none is not None and none >= NOT_APPLIED:
            hints.append(Hint(f"reward_none:{name}", f"'{_short(name)}' did not apply to {none:.0%} of "
                                                     "completions (it returned None): check that what it needs "
                                                     "(the answer column, its tags) is in the data."))
        if failed is not None and failed >= FAILED:
            hints.append(Hint(f"reward_failed:{name}", f"'{_short(name)}' failed on {failed:.0%} of "
                                                       "completions: check it with `grpo-studio try-rewards "
                                                       "CONFIG.yaml`."))
        if zero and all(z == 1.0 for z in zero):
            hints.append(Hint(f"reward_zero:{name}",
                              f"'{_short(name)}' gave 0 to every completion in the last {len(recent)} steps: the "
                              "model never produces what it looks for; check the expected answer format with "
                              "`grpo-studio try-rewards`, or add a partial-credit reward."))
    return hints


class HintWatcher:
    """Feeds on metrics (and held-out `eval`) events; returns the hints and alarms (alarms.py) that hold now
    and were never said before."""

    def __init__(self, window: int = WINDOW) -> None:
        from grpo_studio.engine.common.alarms import Alarms  # alarms.py builds on this module's Hint

        self.window = window
        self.metrics: list[Metrics] = []
        self.alarms = Alarms()
        self.said: set[str] = set()

    def update(self, event: Mapping[str, Any]) -> list[Hint]:
        self.alarms.see(event)
        if event.get("type", "metrics") == "metrics":  # a bare metrics dict counts too
            self.metrics = (self.metrics + [cast(Metrics, event)])[-self.window:]
        hints = signal_hints(self.metrics, self.window) + self.alarms.hints()
        new = [h for h in hints if h.key not in self.said]
        self.said.update(h.key for h in new)
        return new


class PlateauWatch:
    """The mean reward (a running mean over SMOOTHING steps) has not beaten its best for `patience` steps:
    said once, and again only after it improves and stalls anew."""

    def __init__(self, patience: int, smoothing: int = SMOOTHING) -> None:
        self.patience, self.smoothing = patience, smoothing
        self.rewards: list[float] = []
        self.best: float | None = None
        self.best_step = 0
        self.told = False

    def update(self, metrics_event: Metrics) -> str | None:
        reward, step = metrics_event.get("reward"), metrics_event.get("step")
        if not isinstance(reward, (int, float)) or not isinstance(step, int) or self.patience <= 0:
            return None
        self.rewards = (self.rewards + [float(reward)])[-self.smoothing:]
        if len(self.rewards) < self.smoothing:
            return None
        smoothed = sum(self.rewards) / len(self.rewards)
        if self.best is None or smoothed > self.best + 1e-6:
            self.best, self.best_step, self.told = smoothed, step, False
            return None
        if self.told or step - self.best_step < self.patience:
            return None
        self.told = True
        return (f"The mean reward has not improved for {step - self.best_step} steps (best {self.best:.3f} over "
                f"{self.smoothing} steps, at step {self.best_step}); the Monitor's Learning signal card says why.")
