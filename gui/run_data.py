"""What the Monitor knows about one run, folded from its events (no Qt): series for the charts, the latest
progress, samples, log lines, checkpoints, the error and how it ended. The same fold serves a live run and a
replayed events.jsonl, so a reopened run looks exactly like it did live."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from grpo_studio.engine.common.event_types import (
    Checkpoint,
    Done,
    Error,
    Eval,
    Group,
    Hello,
    Log,
    Memory,
    Metrics,
    Phase,
    Progress,
    Sample,
    fields_of,
)
from grpo_studio.engine.common.protocol import RunOutcome

MAX_SAMPLES = 200
MAX_GROUPS = 300  # each at most 16 completions of 2,000 characters (engine/train/sample_group.py): under 10M at worst
MAX_LOG = 5000
AVERAGE_STEPS = 10  # the "mean reward" card and the chart's average line: the mean of the last this many steps
STEP_PHASES = ("generating", "scoring", "optimizing")  # every step's cycle: not worth a log line each


class LogLine(NamedTuple):
    time: float | None
    level: str
    text: str


@dataclass
class Series:
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    def add(self, x: float, y: Any, std: Any = None) -> None:
        if not isinstance(y, (int, float)) or isinstance(y, bool):
            return  # null metrics (e.g. KL when beta = 0) leave a gap instead of a fake zero
        self.x.append(float(x))
        self.y.append(float(y))
        self.std.append(float(std) if isinstance(std, (int, float)) else 0.0)


@dataclass
class RunData:
    hello: dict = field(default_factory=dict)
    phase: str = ""
    step: int = 0
    total_steps: int | None = None
    eta_s: float | None = None
    tokens_per_s: float | None = None
    reward: Series = field(default_factory=Series)
    rewards: dict[str, Series] = field(default_factory=dict)
    loss: Series = field(default_factory=Series)
    kl: Series = field(default_factory=Series)
    clip_ratio: Series = field(default_factory=Series)
    length_mean: Series = field(default_factory=Series)
    length_max: Series = field(default_factory=Series)
    lr: Series = field(default_factory=Series)
    grad_norm: Series = field(default_factory=Series)
    gpu_allocated: Series = field(default_factory=Series)
    gpu_peak: Series = field(default_factory=Series)
    rss: Series = field(default_factory=Series)
    offloaded: Series = field(default_factory=Series)
    eval_accuracy: Series = field(default_factory=Series)  # held-out evaluations (eval events), by step
    eval_reward: Series = field(default_factory=Series)
    samples: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)  # `group` events: one prompt's G completions a step
    log: list[LogLine] = field(default_factory=list)
    checkpoints: list[dict] = field(default_factory=list)
    error: dict | None = None
    outcome: RunOutcome = field(default_factory=RunOutcome)
    paused: bool = False
    last_seq: int = -1
    started: float | None = None
    last_time: float | None = None

    @property
    def best_reward(self) -> float | None:
        return max(self.reward.y) if self.reward.y else None

    @property
    def done(self) -> dict | None:
        """The latest segment's `done` event ({reason, adapter, ...}), None while the run goes on."""
        return self.outcome.done

    @property
    def recent_reward(self) -> float | None:
        """The mean reward of the last AVERAGE_STEPS steps (the last point of the chart's average line)."""
        recent = self.reward.y[-AVERAGE_STEPS:]
        return sum(recent) / len(recent) if recent else None

    def apply(self, events: list[dict]) -> None:
        for event in events:
            self.apply_one(event)

    def apply_one(self, event: dict) -> None:
        """Fold one event; each comes once (RunFollower's promise: engine.common.client.follow_events)."""
        seq = event.get("seq")
        if isinstance(seq, int):
            self.last_seq = seq
        kind = event.get("type")
        when = event.get("time")
        if isinstance(when, (int, float)):
            self.started = self.started if self.started is not None else float(when)
            self.last_time = float(when)
        self.outcome.see(event)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------------ per event type (event_types.py)
    def _on_hello(self, e: Hello) -> None:
        self.hello = dict(e)
        self.total_steps = e.get("total_steps") or self.total_steps
        self.error = None  # a resumed run starts a new life in the same file
        steps = f", {self.total_steps} steps" if self.total_steps else ""
        self._log(e, "info", f"engine {e.get('version', '')} started on {e.get('gpu_name') or e.get('device')}"
                             f"{steps}")

    def _on_phase(self, e: Phase) -> None:
        phase = str(e.get("phase") or "")
        if phase != self.phase and phase not in STEP_PHASES and phase not in ("paused", "saving"):
            self._log(e, "info", phase.replace("_", " "))  # loading_model, and phases added later
        self.phase = phase
        # The engine says so; a later phase means it went on, except a save_now served during the pause.
        self.paused = phase == "paused" or (phase == "saving" and self.paused)

    def _on_progress(self, e: Progress) -> None:
        self.step = int(e.get("step") or 0)
        self.total_steps = e.get("total_steps") or self.total_steps
        self.eta_s = e.get("eta_s")
        self.tokens_per_s = e.get("tokens_per_s")

    def _on_metrics(self, e: Metrics) -> None:
        step = e.get("step") or 0
        self.step = max(self.step, int(step))
        self.reward.add(step, e.get("reward"), e.get("reward_std"))
        for name, value in (e.get("rewards") or {}).items():
            value = value if isinstance(value, dict) else {"mean": value}
            self.rewards.setdefault(name, Series()).add(step, value.get("mean"), value.get("std"))
        self.loss.add(step, e.get("loss"))
        self.kl.add(step, e.get("kl"))
        self.clip_ratio.add(step, e.get("clip_ratio"))
        length = e.get("completion_length") or {}
        if isinstance(length, dict):
            self.length_mean.add(step, length.get("mean"))
            self.length_max.add(step, length.get("max"))
        self.lr.add(step, e.get("lr"))
        self.grad_norm.add(step, e.get("grad_norm"))
        of = f"/{self.total_steps}" if self.total_steps else ""
        self._log(e, "info", f"step {step}{of} · reward {_fmt(e.get('reward'))} · loss {_fmt(e.get('loss'))}"
                             f" · length {_fmt(length.get('mean') if isinstance(length, dict) else None, 1)}")

    def _on_memory(self, e: Memory) -> None:
        step = e.get("step") or self.step
        self.gpu_allocated.add(step, e.get("gpu_allocated"))
        self.gpu_peak.add(step, e.get("gpu_peak"))
        self.rss.add(step, e.get("rss"))
        self.offloaded.add(step, e.get("offloaded"))

    def _on_eval(self, e: Eval) -> None:
        step = e.get("step") or 0
        self.eval_accuracy.add(step, e.get("accuracy"))
        self.eval_reward.add(step, e.get("reward"))
        self._log(e, "info", f"held-out accuracy {_fmt(e.get('accuracy'), 2)} · reward {_fmt(e.get('reward'))} on "
                             f"{e.get('num_prompts')} prompts at step {step}{' (base model)' if step == 0 else ''}")

    def _on_sample(self, e: Sample) -> None:
        self.samples.append({k: e.get(k) for k in fields_of("sample")})
        del self.samples[:-MAX_SAMPLES]

    def _on_group(self, e: Group) -> None:
        if isinstance(e.get("completions"), list):
            self.groups.append({k: e.get(k) for k in fields_of("group")})
            del self.groups[:-MAX_GROUPS]

    def _on_log(self, e: Log) -> None:
        self._log(e, str(e.get("level", "info")), str(e.get("message", "")))

    def _on_checkpoint(self, e: Checkpoint) -> None:
        self.checkpoints.append({"step": e.get("step"), "path": e.get("path")})
        self._log(e, "info", f"checkpoint saved at step {e.get('step')}: {e.get('path')}")

    def _on_error(self, e: Error) -> None:
        self.error = {"kind": e.get("kind", "crash"), "message": e.get("message", ""), "hint": e.get("hint", "")}
        self._log(e, "error", str(e.get("message", "")))

    def _on_done(self, e: Done) -> None:
        self.paused = False
        self.phase = ""
        adapter = f"; adapter in {e['adapter']}" if e.get("adapter") else ""
        self._log(e, "info", f"{e.get('reason')} at step {self.step}{adapter}")

    def _log(self, e: Mapping[str, Any], level: str, text: str) -> None:
        when = e.get("time")
        self.log.append(LogLine(float(when) if isinstance(when, (int, float)) else None, level, text))
        del self.log[:-MAX_LOG]


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def trailing_mean(series: Series, window: int = AVERAGE_STEPS) -> Series:
    """Each point's mean over it and the window - 1 points before it (what the "mean reward" card shows)."""
    out = Series()
    total = 0.0
    for i, y in enumerate(series.y):
        total += y - (series.y[i - window] if i >= window else 0.0)
        out.add(series.x[i], total / min(i + 1, window))
    return out
