"""Which runs are going right now, and what just happened in them — for the tray's tooltip, menu and desktop
notifications. It polls the run store every few seconds and reads only the new lines of each active run's
events.jsonl, so it costs nothing while nothing happens and needs no socket."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from grpo_studio.engine.common import runs as run_store
from grpo_studio.engine.common.alarms import ALARM_KEYS
from grpo_studio.engine.common.event_types import Checkpoint, Done, Error, Metrics, event_as
from grpo_studio.engine.common.events import EventTail
from grpo_studio.engine.common.protocol import LIVE_STATES
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.common.signal_hints import HintWatcher, PlateauWatch

POLL_MS = 2000


HISTORY_BYTES = 32 << 20  # a longer events.jsonl is not read back at start: its alarms watch from then on


class ActiveRuns(QObject):
    runs_event = Signal(list)               # RunSummary of active runs
    # kind (finished | stopped | error | checkpoint | plateau | alarm), title, text
    notice_event = Signal(str, str, str)

    def __init__(self, runs_dir_getter, parent: QObject | None = None, plateau_steps_getter=None) -> None:
        super().__init__(parent)
        self._runs_dir = runs_dir_getter
        self._plateau_steps = plateau_steps_getter or (lambda: 0)
        self.active: list = []
        self._tails: dict[str, EventTail] = {}  # per watched run: where its events.jsonl was read up to
        self._plateaus: dict[str, PlateauWatch] = {}
        self._alarms: dict[str, HintWatcher] = {}  # per run: each alarm is a tray notice once
        self._timer = QTimer(self, interval=POLL_MS)
        self._timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.poll()
        self._timer.start()

    def poll(self) -> None:
        try:
            runs = run_store.list_runs(self._runs_dir())
        except OSError:
            runs = []
        active = [r for r in runs if r.state in LIVE_STATES]
        watched = {str(r.path) for r in active} | set(self._tails)
        for run in runs:
            key = str(run.path)
            if key not in watched:
                continue
            if key not in self._tails:
                self._fold_history(key, EventTail(RunPaths(Path(run.path)).events))
                continue
            for event in self._tails[key].new_events():
                self._notice(run.name, event)
                self._watch_plateau(key, run.name, event)
                self._watch_alarms(key, run.name, event)
            if run.state not in LIVE_STATES:
                del self._tails[key]  # ended: its last events were just read
                self._plateaus.pop(key, None)
                self._alarms.pop(key, None)
        self.active = active
        self.runs_event.emit(active)

    def _watch_plateau(self, key: str, name: str, event: dict) -> None:
        patience, metrics = self._plateau_steps(), event_as(event, Metrics)
        if metrics is None or patience <= 0:
            return
        watch = self._plateaus.get(key)
        if watch is None or watch.patience != patience:
            watch = self._plateaus[key] = PlateauWatch(patience)
        text = watch.update(metrics)
        if text:
            self.notice_event.emit("plateau", f"Reward stalled · {name}", text)

    def _fold_history(self, key: str, tail: EventTail) -> None:
        """What a run wrote before the app watched it: the alarms' baseline is its first steps, and an alarm
        that already held then is not news (the Monitor's card shows it). Notices start from here."""
        self._tails[key] = tail
        try:
            size = tail.path.stat().st_size
        except OSError:
            return
        if size > HISTORY_BYTES:
            tail.offset = size
            return
        if size == 0:
            return
        watcher = self._alarms[key] = HintWatcher()
        for event in tail.new_events():
            if event.get("type") in ("metrics", "eval"):
                watcher.update(event)

    def _watch_alarms(self, key: str, name: str, event: dict) -> None:
        if event.get("type") not in ("metrics", "eval"):
            return
        for hint in self._alarms.setdefault(key, HintWatcher()).update(event):
            if hint.key in ALARM_KEYS:
                self.notice_event.emit("alarm", f"Training alarm · {name}", hint.text)

    def _notice(self, name: str, event: dict) -> None:
        checkpoint, error, done = event_as(event, Checkpoint), event_as(event, Error), event_as(event, Done)
        if checkpoint is not None:
            self.notice_event.emit("checkpoint", f"Checkpoint saved · {name}", f"step {checkpoint.get('step')}")
        elif error is not None:
            self.notice_event.emit("error", f"Run failed · {name}", str(error.get("message", "")))
        elif done is not None and done.get("reason") in ("finished", "stopped"):
            reason = done.get("reason")
            text = "The adapter is ready to export or try." if reason == "finished" else \
                "Saved a checkpoint; resume it from Runs."
            self.notice_event.emit(str(reason), f"Run {reason} · {name}", text)
