"""What the Monitor knows about one run, folded from its events (no Qt): series for the charts, the latest
progress, samples, log lines, checkpoints, the error and how it ended. The same fold serves a live run and a
replayed events.jsonl, so a reopened run looks exactly like it did live."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_SAMPLES = 200
MAX_LOG = 2000


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
    samples: list[dict] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    checkpoints: list[dict] = field(default_factory=list)
    error: dict | None = None
    done: dict | None = None
    paused: bool = False
    last_seq: int = -1
    started: float | None = None
    last_time: float | None = None

    @property
    def best_reward(self) -> float | None:
        return max(self.reward.y) if self.reward.y else None

    @property
    def last_reward(self) -> float | None:
        return self.reward.y[-1] if self.reward.y else None

    def apply(self, events: list[dict]) -> None:
        for event in events:
            self.apply_one(event)

    def apply_one(self, event: dict) -> None:
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return  # a replay overlapping live events: each event counts once
            self.last_seq = seq
        kind = event.get("type")
        when = event.get("time")
        if isinstance(when, (int, float)):
            self.started = self.started if self.started is not None else float(when)
            self.last_time = float(when)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------------ per event type
    def _on_hello(self, e: dict) -> None:
        self.hello = dict(e)
        self.total_steps = e.get("total_steps") or self.total_steps
        self.done, self.error = None, None  # a resumed run starts a new life in the same file

    def _on_phase(self, e: dict) -> None:
        self.phase = str(e.get("phase") or "")
        self.paused = False  # the engine pauses between steps; any new phase means it went on

    def _on_progress(self, e: dict) -> None:
        self.step = int(e.get("step") or 0)
        self.total_steps = e.get("total_steps") or self.total_steps
        self.eta_s = e.get("eta_s")
        self.tokens_per_s = e.get("tokens_per_s")

    def _on_metrics(self, e: dict) -> None:
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

    def _on_memory(self, e: dict) -> None:
        step = e.get("step") or self.step
        self.gpu_allocated.add(step, e.get("gpu_allocated"))
        self.gpu_peak.add(step, e.get("gpu_peak"))
        self.rss.add(step, e.get("rss"))
        self.offloaded.add(step, e.get("offloaded"))

    def _on_sample(self, e: dict) -> None:
        self.samples.append({k: e.get(k) for k in ("step", "prompt", "completion", "rewards", "reward")})
        del self.samples[:-MAX_SAMPLES]

    def _on_log(self, e: dict) -> None:
        message = str(e.get("message", ""))
        level = str(e.get("level", "info"))
        if message in ("paused", "resumed") or message.startswith(("paused", "resumed")):
            self.paused = message.startswith("paused")
        self.log.append((level, message))
        del self.log[:-MAX_LOG]

    def _on_checkpoint(self, e: dict) -> None:
        self.checkpoints.append({"step": e.get("step"), "path": e.get("path")})

    def _on_error(self, e: dict) -> None:
        self.error = {"kind": e.get("kind", "crash"), "message": e.get("message", ""), "hint": e.get("hint", "")}
        self.log.append(("error", str(e.get("message", ""))))

    def _on_done(self, e: dict) -> None:
        self.done = {"reason": e.get("reason"), "adapter": e.get("adapter")}
        self.paused = False
        self.phase = ""
