"""Monitor: one run, live or replayed — progress, charts, sample completions, the log, the engine's error as a
readable panel, and the run's controls (Pause / Resume, Save now, Stop)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QPlainTextEdit,
                               QProgressBar, QPushButton, QScrollArea, QSplitter, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QTabWidget, QTextBrowser, QVBoxLayout, QWidget)

from grpo_studio.engine.text import clip
from grpo_studio.gui.engine_bridge import EngineBridge, RunFollower, engine_alive
from grpo_studio.gui.learning_signal import LearningSignalCard
from grpo_studio.gui.run_data import RunData
from grpo_studio.gui.widgets import (Card, EmptyState, ErrorPanel, fmt_duration, fmt_number, label, open_folder,
                                     page_header, page_layout)

REFRESH_MS = 200  # charts redraw at most five times a second however fast events arrive
PHASE_TEXT = {"loading_model": "loading the model", "generating": "generating completions",
              "scoring": "scoring rewards", "optimizing": "updating the adapter", "saving": "saving a checkpoint"}


class Stat(QWidget):
    def __init__(self, caption: str) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.value = label("–", "StatValue")
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
        self.charts = None  # built with the run view on first use: pyqtgraph costs ~0.5 s to import
        self._build_shortcuts()

    def ensure_view(self) -> None:
        if self.charts is None:
            self.stack.addWidget(self._build_run_view())

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
        self.save_button.clicked.connect(lambda: self._send("save_now"))
        self.stop_button.clicked.connect(lambda: self._send("stop"))
        self.folder_button.clicked.connect(lambda: self.run_dir and open_folder(self.run_dir))
        header = page_header("Monitor", "", [self.pause_button, self.save_button, self.stop_button,
                                             self.folder_button])
        self.title = header.itemAt(0).layout().itemAt(0).widget()
        self.subtitle = header.itemAt(0).layout().itemAt(1).widget()
        layout.addLayout(header)

        progress_card = Card()
        row = QHBoxLayout()
        row.setSpacing(28)
        progress_column = QVBoxLayout()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress_text = label("", "Muted")
        progress_column.addWidget(self.progress_text)
        progress_column.addWidget(self.progress)
        row.addLayout(progress_column, 3)
        self.stat_reward, self.stat_best = Stat("mean reward"), Stat("best reward")
        self.stat_eta, self.stat_speed = Stat("time left"), Stat("tokens / s")
        for stat in (self.stat_reward, self.stat_best, self.stat_eta, self.stat_speed):
            row.addWidget(stat)
        progress_card.body.addLayout(row)
        layout.addWidget(progress_card)

        self.error_panel = ErrorPanel()
        layout.addWidget(self.error_panel)
        self.signal_card = LearningSignalCard()
        layout.addWidget(self.signal_card)

        self.tabs = QTabWidget()
        from grpo_studio.gui.charts import ChartGrid

        self.charts = ChartGrid()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(10, 10, 10, 10)
        holder_layout.addWidget(self.charts)
        scroll.setWidget(holder)
        self.tabs.addTab(scroll, "&Charts")
        self.tabs.addTab(self._build_samples(), "&Samples")
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(5000)
        self.tabs.addTab(self.log_view, "&Log")
        layout.addWidget(self.tabs, 1)
        return view

    def _build_samples(self) -> QWidget:
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.samples = QTableWidget(0, 4)
        self.samples.setHorizontalHeaderLabels(["Step", "Prompt", "Completion", "Reward"])
        self.samples.verticalHeader().hide()
        self.samples.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.samples.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.samples.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.samples.setAlternatingRowColors(True)
        header = self.samples.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.samples.currentCellChanged.connect(lambda row, *_: self._show_sample(row))
        self.sample_detail = QTextBrowser()
        self.sample_detail.setPlaceholderText("Select a sample to read the whole prompt and completion.")
        splitter.addWidget(self.samples)
        splitter.addWidget(self.sample_detail)
        splitter.setSizes([300, 160])
        return splitter

    def _build_shortcuts(self) -> None:
        for keys, slot in (("Ctrl+P", self.pause_action), ("Ctrl+S", lambda: self._send("save_now")),
                           ("Ctrl+.", lambda: self._send("stop"))):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)

    # ------------------------------------------------------------------ opening runs
    def open_run(self, run_dir: str | Path, expect_start: bool = False) -> None:
        """Show `run_dir`: replay its events.jsonl, then follow it live while its engine runs.
        `expect_start`: an engine was just launched for it (a new or resumed run)."""
        self.close_run()
        self.ensure_view()
        self.run_dir = Path(run_dir)
        self.data = RunData()
        self.pause_pending = False
        self.charts.clear()
        self.charts.estimate = _estimate_total(self.run_dir)
        self.samples.setRowCount(0)
        self.sample_detail.clear()
        self.log_view.clear()
        self._log_shown = 0
        self.error_panel.hide()
        self.signal_card.clear()
        self.title.setText(self.run_dir.name)
        self.subtitle.setText(_describe(self.run_dir))
        self.live = expect_start or engine_alive(self.run_dir)
        self.follower = self.bridge.follow(self.run_dir, expect_start=expect_start)
        self.follower.events_event.connect(self.events_event_response)
        self.follower.mode_event.connect(self._mode_event_response)
        self.follower.start()
        self.stack.setCurrentIndex(1)
        self._dirty = True
        self._refresh()
        self.status_event.emit(f"Opened {self.run_dir.name}" + (" (live)" if self.live else ""))

    def close_run(self) -> None:
        if self.follower is not None:
            self.follower.events_event.disconnect(self.events_event_response)
            self.follower.stop()
            self.follower.wait(2000)
            self.follower = None

    def events_event_response(self, events: list) -> None:
        self.data.apply(events)
        self.signal_card.apply(events)
        self._dirty = True

    def _mode_event_response(self, mode: str) -> None:
        self.live = mode in ("live", "tail")
        self._dirty = True

    # ------------------------------------------------------------------ commands
    def pause_action(self) -> None:
        # While a pause is pending (the engine finishes its step first), a second click cancels it.
        self._send("resume" if self.data.paused or self.pause_pending else "pause")

    def _send(self, cmd: str) -> None:
        if self.run_dir is None or not self._running():
            self.status_event.emit("This run is not running")
            return
        self.bridge.send(self.run_dir, cmd)  # the main window shows the engine's reply in the status bar

    def _command_event_response(self, run_dir: str, cmd: str, reply: dict) -> None:
        if self.run_dir is None or Path(run_dir) != self.run_dir:
            return
        if reply.get("ok"):
            # The engine pauses between steps: "paused" is shown once its "paused after step N" event
            # arrives, not on the reply, so the step shown is the step it stopped at.
            if cmd == "pause":
                self.pause_pending = True
            elif cmd == "resume":
                self.pause_pending = False
                self.data.paused = False  # it wakes within a fraction of a second
            self._dirty = True

    def _running(self) -> bool:
        return self.data.done is None and (self.live or (self.run_dir is not None and engine_alive(self.run_dir)))

    # ------------------------------------------------------------------ drawing
    def _refresh(self) -> None:
        if not self._dirty or self.run_dir is None:
            return
        self._dirty = False
        data = self.data
        self.charts.update_from(data)
        total = data.total_steps or 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(data.step, max(total, 1)))
        self.progress_text.setText(self._progress_line())
        self.stat_reward.value.setText(fmt_number(data.last_reward))
        self.stat_best.value.setText(fmt_number(data.best_reward))
        running = self._running()
        self.stat_eta.value.setText(fmt_duration(data.eta_s) if running else "–")
        self.stat_speed.value.setText(f"{data.tokens_per_s:,.0f}" if data.tokens_per_s else "–")
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
            reason = data.done.get("reason")
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
        samples = self.data.samples
        if self.samples.rowCount() == len(samples):
            return
        names = sorted({n for s in samples for n in (s.get("rewards") or {})})
        self.samples.setColumnCount(4 + len(names))
        self.samples.setHorizontalHeaderLabels(["Step", "Prompt", "Completion", "Reward"] +
                                               [n.rsplit(":", 1)[-1] for n in names])
        self.samples.setRowCount(len(samples))
        for row, sample in enumerate(reversed(samples)):  # newest first
            values = [str(sample.get("step", "")), _one_line(sample.get("prompt")),
                      _one_line(sample.get("completion")), fmt_number(sample.get("reward"), 2)]
            values += [fmt_number((sample.get("rewards") or {}).get(n), 2) for n in names]
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column != 1 and column != 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.samples.setItem(row, column, item)

    def _show_sample(self, row: int) -> None:
        if row < 0 or row >= len(self.data.samples):
            return
        sample = list(reversed(self.data.samples))[row]
        rewards = "".join(f"<li>{name.rsplit(':', 1)[-1]}: {fmt_number(v, 3)}</li>"
                          for name, v in (sample.get("rewards") or {}).items())
        self.sample_detail.setHtml(
            f"<p><b>Step {sample.get('step')}</b> · reward {fmt_number(sample.get('reward'), 3)}</p>"
            f"<p><b>Prompt</b></p><pre>{_escape(sample.get('prompt'))}</pre>"
            f"<p><b>Completion</b></p><pre>{_escape(sample.get('completion'))}</pre><ul>{rewards}</ul>")

    def _refresh_log(self) -> None:
        lines = self.data.log
        shown = getattr(self, "_log_shown", 0)
        if shown > len(lines):
            shown = 0
            self.log_view.clear()
        for level, message in lines[shown:]:
            self.log_view.appendPlainText(f"[{level}] {message}" if level != "info" else message)
        self._log_shown = len(lines)


def _one_line(text: object, limit: int = 120) -> str:
    return clip(" ".join(str(text or "").split()), limit)


def _escape(text: object) -> str:
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
        from grpo_studio.engine.config import load_config
        from grpo_studio.engine.estimate import estimate_run

        return int(estimate_run(load_config(run_dir / "config.yaml"), gpu=None)["plans"]["grpo_studio"]["total"])
    except Exception:  # noqa: BLE001 - no config or an unknown model: simply no estimate line
        return None
