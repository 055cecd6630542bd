"""Monitor: one run, live or replayed — progress, charts, sample completions, the log, the engine's error as a
readable panel, and the run's controls (Pause / Resume, Save now, Stop)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QLocale, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.gui.engine_bridge import EngineBridge, RunFollower, run_dir_is_live
from grpo_studio.gui.group_view import GroupView
from grpo_studio.gui.learning_signal import LearningSignalCard
from grpo_studio.gui.run_data import AVERAGE_STEPS, RunData
from grpo_studio.gui.samples_view import SamplesView
from grpo_studio.gui.widgets import (
    Card,
    EmptyState,
    ErrorPanel,
    fmt_duration,
    fmt_number,
    header_labels,
    held_out_text,
    label,
    open_folder,
    page_header,
    page_layout,
)

if TYPE_CHECKING:  # pyqtgraph loads with the run view (startup time)
    from grpo_studio.gui.charts import ChartGrid

REFRESH_MS = 200  # charts redraw at most five times a second however fast events arrive
ANNOUNCE_WITHIN_S = 10.0  # events older than this are history (a reopened run): no status line for them
PHASE_TEXT = {"loading_model": "loading the model", "generating": "generating completions",
              "scoring": "scoring rewards", "optimizing": "updating the adapter", "saving": "saving a checkpoint",
              "paused": "paused", "evaluating": "answering the held-out prompts"}
ENGLISH = QLocale(QLocale.Language.English, QLocale.Country.UnitedStates)  # the UI's language, whatever the system's


class Stat(QWidget):
    def __init__(self, caption: str, widest: str = "") -> None:
        """`widest`: the longest value it shows, room kept from the start: a value that grows between layout
        passes ("12,913" after "987") is never painted cut off."""
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.value = label("–", "StatValue")
        self.value.ensurePolished()  # the theme's stat font, to measure with
        self.value.setMinimumWidth(self.value.fontMetrics().horizontalAdvance(widest) + 2)
        layout.addWidget(self.value)
        layout.addWidget(label(caption, "StatLabel"))


class MonitorPage(QWidget):
    status_event = Signal(str)          # a line for the status bar
    show_runs_action = Signal()
    start_demo_action = Signal()

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.run_dir: Path | None = None
        self.data = RunData()
        self.follower: RunFollower | None = None
        self.live = False
        self.pause_pending = False  # a pause was accepted; the engine has not reached the end of its step yet
        self._dirty = False
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self._timer.start()
        bridge.command_event.connect(self._command_event_response)

        self.stack = QStackedWidget(self)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)
        self.empty = EmptyState("No run open", "Start a run on the New run page, or open one from Runs: its "
                                "reward, loss and memory charts and sample completions appear here as it trains.",
                                "Open Runs")
        self.empty.action_event.connect(self.show_runs_action)
        self.stack.addWidget(self.empty)
        self.charts: ChartGrid | None = None  # built with the run view on first use: pyqtgraph costs ~0.5 s to import

    def ensure_view(self) -> ChartGrid:
        if self.charts is None:
            self.stack.addWidget(self._build_run_view())
        assert self.charts is not None  # _build_run_view() made them
        return self.charts

    def restyle(self) -> None:
        if self.charts is not None:
            self.charts.restyle()
            self._dirty = True

    # ------------------------------------------------------------------ layout
    def _build_run_view(self) -> QWidget:
        view = QWidget()
        layout = page_layout(view)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause after the current step (Ctrl+P); the GPU memory stays allocated")
        self.save_button = QPushButton("Save now")
        self.save_button.setToolTip("Write a checkpoint after the current step (Ctrl+S)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("Danger")
        self.stop_button.setToolTip("Save a checkpoint and end the run; it can be resumed later (Ctrl+.)")
        self.folder_button = QPushButton("Open folder")
        self.pause_button.clicked.connect(self.pause_action)
        self.save_button.clicked.connect(lambda: self.send_command("save_now"))
        self.stop_button.clicked.connect(lambda: self.send_command("stop"))
        self.folder_button.clicked.connect(lambda: self.run_dir and open_folder(self.run_dir))
        header = page_header("Monitor", "", [self.pause_button, self.save_button, self.stop_button,
                                             self.folder_button])
        self.title, self.subtitle = header_labels(header)
        layout.addLayout(header)

        progress_card = Card()
        row = QHBoxLayout()
        row.setSpacing(28)
        progress_column = QVBoxLayout()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress_text = label("", "Muted", wrap=True)  # "Step 101 of 600 · generating completions" wraps
        progress_column.addWidget(self.progress_text)
        progress_column.addWidget(self.progress)
        row.addLayout(progress_column, 3)
        self.stat_reward = Stat(f"mean reward, last {AVERAGE_STEPS} steps")
        self.stat_reward.setToolTip("The mean of the last steps' rewards: the chart's average line ends here")
        self.stat_best = Stat("best step reward")
        self.stat_held_out = Stat("held-out accuracy", "0.00 → 0.00")
        self.stat_held_out.setToolTip("Held-out accuracy before training (step 0, the base model) → at the latest "
                                      "evaluation (the config's eval: section)")
        self.stat_eta, self.stat_speed = Stat("time left", "88 h 88 min"), Stat("tokens / s", "888,888")
        for stat in (self.stat_reward, self.stat_best, self.stat_held_out, self.stat_eta, self.stat_speed):
            row.addWidget(stat)
        progress_card.body.addLayout(row)
        layout.addWidget(progress_card)

        self.error_panel = ErrorPanel()
        layout.addWidget(self.error_panel)
        self.signal_card = LearningSignalCard()
        layout.addWidget(self.signal_card)

        self.tabs = QTabWidget()
        from grpo_studio.gui.charts import ChartGrid

        self.charts = charts = ChartGrid()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(10, 10, 10, 10)
        holder_layout.addWidget(charts)
        scroll.setWidget(holder)
        self.tabs.addTab(scroll, "&Charts")
        self.samples, self.group_view = SamplesView(), GroupView()
        self.samples_stack = QStackedWidget()  # the G completions of a step; one sample a step for older runs
        self.samples_stack.addWidget(self.group_view)
        self.samples_stack.addWidget(self.samples)
        self.tabs.addTab(self.samples_stack, "&Samples")
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(5000)
        self.tabs.addTab(self.log_view, "&Log")
        layout.addWidget(self.tabs, 1)
        return view

    # ------------------------------------------------------------------ opening runs
    def open_run(self, run_dir: str | Path, expect_start: bool = False) -> None:
        """Show `run_dir`: replay its events.jsonl, then follow it live while its engine runs.
        `expect_start`: an engine was just launched for it (a new or resumed run)."""
        self.close_run()
        charts = self.ensure_view()
        self.run_dir = Path(run_dir)
        self.data = RunData()
        self.pause_pending = False
        charts.clear()
        charts.estimate = _estimate_total(self.run_dir)
        self.samples.clear()
        self.group_view.clear()
        self.log_view.clear()
        self._log_shown = 0
        self.error_panel.hide()
        self.signal_card.clear()
        self.title.setText(self.run_dir.name)
        self.subtitle.setText(_describe(self.run_dir))
        self.live = expect_start or run_dir_is_live(self.run_dir)
        follower = self.follower = self.bridge.follow(self.run_dir, expect_start=expect_start)
        # Only the current follower's events count: a batch still queued from the run shown before must not
        # land in this run's data (its seqs would hide this run's events as "already seen").
        def on_events(events: list) -> None:
            if follower is self.follower:
                self.events_event_response(events)

        def on_ended() -> None:
            if follower is self.follower:
                self._follow_ended()

        follower.events_event.connect(on_events)
        follower.ended_event.connect(on_ended)
        follower.start()
        self.stack.setCurrentIndex(1)
        self._dirty = True
        self._refresh()
        self.status_event.emit(f"Opened {self.run_dir.name}" + (" (live)" if self.live else ""))

    def close_run(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
            follower.wait(2000)

    def events_event_response(self, events: list) -> None:
        before = (self.data.paused, len(self.data.checkpoints), self.data.done)
        self.data.apply(events)
        self.signal_card.apply(events)
        self._dirty = True
        self._say_what_changed(*before)

    def _follow_ended(self) -> None:
        self.live = False
        self._dirty = True

    def _say_what_changed(self, was_paused: bool, checkpoints: int, done: dict | None) -> None:
        """One status line per change the user asked for (or should know about), once it really happened —
        live, not while a reopened run's history is read back."""
        data = self.data
        if data.last_time is None or time.time() - data.last_time > ANNOUNCE_WITHIN_S:
            return
        if data.done is not None and done is None:
            self.status_event.emit(self._progress_line())
        elif data.paused and not was_paused:
            self.status_event.emit(f"Paused at step {data.step}: Resume continues, Save now saves it now")
        elif was_paused and not data.paused:
            self.status_event.emit(f"Resumed at step {data.step}")
        if len(data.checkpoints) > checkpoints:
            self.status_event.emit(f"Checkpoint saved at step {data.checkpoints[-1]['step']}")

    # ------------------------------------------------------------------ commands
    def pause_action(self) -> None:
        # While a pause is pending (the engine finishes its step first), a second click cancels it.
        self.send_command("resume" if self.data.paused or self.pause_pending else "pause")

    def send_command(self, cmd: str) -> None:
        if self.run_dir is None or not self._running():
            self.status_event.emit("This run is not running")
            return
        self.bridge.send(self.run_dir, cmd)
        paused = self.data.paused
        verb = {"pause": "Pausing after this step…", "resume": "Resuming…", "stop": "Stopping: saving a "
                "checkpoint first…", "save_now": "Saving a checkpoint now…" if paused else
                "A checkpoint will be saved after this step"}[cmd]
        self.status_event.emit(verb)  # what happens next is said when it happened (_say_what_changed)

    def _command_event_response(self, run_dir: str, cmd: str, reply: dict) -> None:
        if self.run_dir is None or Path(run_dir) != self.run_dir:
            return
        if reply.get("ok"):
            # The engine pauses between steps: "paused" is shown once its `paused` phase arrives, not on
            # the reply, so the step shown is the step it stopped at.
            if cmd == "pause":
                self.pause_pending = True
            elif cmd == "resume":
                self.pause_pending = False
                self.data.paused = False  # it wakes within a fraction of a second
            self._dirty = True
        else:  # the main window leaves the Monitor's own run to the Monitor
            self.status_event.emit(f"{cmd} failed: {reply.get('error') or 'no reply from the engine'}")

    def _running(self) -> bool:
        return self.data.done is None and (self.live or (self.run_dir is not None and run_dir_is_live(self.run_dir)))

    # ------------------------------------------------------------------ drawing
    def _refresh(self) -> None:
        if not self._dirty or self.run_dir is None or self.charts is None:
            return
        self._dirty = False
        data = self.data
        self.charts.update_from(data)
        total = data.total_steps or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(data.step, max(total, 1)))
        self.progress_text.setText(self._progress_line())
        self.stat_reward.value.setText(fmt_number(data.recent_reward))
        self.stat_best.value.setText(fmt_number(data.best_reward))
        accuracy = data.eval_accuracy.y
        self.stat_held_out.setVisible(bool(accuracy))  # only for runs that evaluate (eval: in the config)
        self.stat_held_out.value.setText(held_out_text(accuracy[0] if accuracy else None,
                                                       accuracy[-1] if len(accuracy) > 1 else None))
        running = self._running()
        self.stat_eta.value.setText("paused" if running and data.paused else
                                    fmt_duration(data.eta_s) if running else "–")
        self.stat_speed.value.setText(fmt_rate(data.tokens_per_s) if running and not data.paused else "–")
        for stat in (self.stat_eta, self.stat_speed):  # an ended run has no time left or speed: room for the rest
            stat.setVisible(running or data.done is None)
        for button in (self.pause_button, self.save_button, self.stop_button):
            button.setEnabled(running)
        if data.paused or data.done is not None:
            self.pause_pending = False
        self.pause_button.setText("Resume" if data.paused else "Pausing…" if self.pause_pending else "Pause")
        if data.error:
            self.error_panel.show_error(data.error["kind"], data.error["message"], data.error.get("hint", ""))
        else:
            self.error_panel.hide()
        self.signal_card.refresh()
        self._refresh_samples()
        self._refresh_log()

    def _progress_line(self) -> str:
        data = self.data
        step = f"Step {data.step} of {data.total_steps}" if data.total_steps else f"Step {data.step}"
        if data.done:
            reason = str(data.done.get("reason"))
            return {"finished": f"Finished: {step}", "stopped": f"Stopped at step {data.step} (resumable)",
                    "failed": f"Failed at step {data.step}"}.get(reason, step)
        if data.paused:
            return f"{step} · paused"
        if not self._running():
            return f"{step} · the engine is not running (resume it from Runs)" if data.last_seq >= 0 else \
                "Waiting for the engine to start…"
        phase = PHASE_TEXT.get(data.phase, "")
        return f"{step} · {phase}" if phase else step

    def _refresh_samples(self) -> None:
        if self.data.groups or not self.data.samples:
            self.samples_stack.setCurrentWidget(self.group_view)
            self.group_view.show_groups(self.data.groups)
        else:
            self.samples_stack.setCurrentWidget(self.samples)
            self.samples.show_samples(self.data.samples)

    def _refresh_log(self) -> None:
        lines = self.data.log
        shown = getattr(self, "_log_shown", 0)
        if shown > len(lines):
            shown = 0
            self.log_view.clear()
        text = "\n".join(_log_text(line) for line in lines[shown:])
        if text:
            self.log_view.appendPlainText(text)
        self._log_shown = len(lines)


def fmt_rate(value: float | None) -> str:
    """Tokens per second in the UI's English: 13.9, 1,387."""
    if not value:
        return "–"
    return ENGLISH.toString(float(value), "f", 1 if value < 100 else 0)


def _log_text(line) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(line.time)) if line.time is not None else "--:--:--"
    level = "" if line.level == "info" else f"[{line.level}] "
    return f"{when}  {level}{line.text}"


def _describe(run_dir: Path) -> str:
    """'demo · on demo' from the run's config.yaml (read without validating: it is the engine's copy)."""
    try:
        import yaml

        data = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, ValueError):
        return str(run_dir)
    model = data.get("model", "?")
    dataset = (data.get("dataset") or {}).get("path", "?")
    return f"{model} trained on {dataset} · {run_dir}"


def _estimate_total(run_dir: Path) -> int | None:
    """GRPO Studio's peak estimate for this run, drawn as a line on the GPU memory chart."""
    try:
        from grpo_studio.engine.common.config import load_config
        from grpo_studio.engine.common.estimate import estimate_run

        return int(estimate_run(load_config(run_dir / "config.yaml"), gpu=None)["plans"]["grpo_studio"]["total"])
    except Exception:  # noqa: BLE001 - no config or an unknown model: simply no estimate line
        return None
