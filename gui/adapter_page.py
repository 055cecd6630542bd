"""The set-up the Export and Try pages share: they work on a run's trained adapter through one `grpo-studio`
command. An empty state until some run has an adapter, the run choice, the error panel, and a CliJob whose JSON
lines go to the page's `_line` and whose end goes to its `_finished`."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from grpo_studio.gui.cli_job import CliJob, error_text
from grpo_studio.gui.run_choice import RunChoice
from grpo_studio.gui.widgets import EmptyState, ErrorPanel


class AdapterPage(QWidget):
    status_event = Signal(str)
    show_runs_action = Signal()

    def __init__(self, empty_title: str, empty_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_dir: Path | None = None
        self.job: CliJob | None = None
        self.run = RunChoice()
        self.run.run_changed_event.connect(self._run_changed)
        self.error_panel = ErrorPanel()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        outer.addWidget(self.stack)
        self.empty = EmptyState(empty_title, empty_text, "Open Runs")
        self.empty.action_event.connect(self.show_runs_action)
        self.stack.addWidget(self.empty)
        scroll = QScrollArea()  # a small window scrolls the page instead of squashing its fields
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._build())
        self.stack.addWidget(scroll)

    def _build(self) -> QWidget:
        """The page's own view (shown once a run has an adapter); it places self.run and self.error_panel."""
        raise NotImplementedError

    # ------------------------------------------------------------------ runs
    def set_runs_dir(self, runs_dir: Path | None) -> None:
        self.runs_dir = runs_dir
        self.reload()

    def reload(self) -> None:
        self.run.reload(self.runs_dir)
        self.stack.setCurrentIndex(1 if self.run.count() else 0)

    def select_run(self, run_dir: str) -> None:
        self.reload()
        self.run.select(run_dir)

    def _run_changed(self, run_dir: str) -> None:
        """The chosen run changed (or the list was re-read)."""

    # ------------------------------------------------------------------ the command
    def start_job(self, args: list[str]) -> CliJob:
        self.error_panel.hide()
        self.job = CliJob(args, self)
        self.job.line_event.connect(self._line)
        self.job.text_event.connect(self._text)
        self.job.finished_event.connect(self._job_finished)
        self.job.start()
        return self.job

    def _job_finished(self, code: int, last: object, stderr: str) -> None:
        if self.sender() is not None and self.sender() is not self.job:
            return  # a job this page already let go of (e.g. the run changed)
        self.job = None
        self._finished(code, last, stderr)

    def show_failure(self, kind: str, code: int, last: object, stderr: str) -> None:
        """The error panel for a failed command, unless one of its JSON lines already filled it."""
        if self.error_panel.isHidden():
            message, hint = error_text(last if isinstance(last, dict) else None, stderr, code)
            self.error_panel.show_error(kind, message, hint)

    def _line(self, message: dict) -> None:
        """One JSON object the command printed."""

    def _text(self, text: str) -> None:
        """One line the command printed that is not JSON."""

    def _finished(self, code: int, last: object, stderr: str) -> None:
        """The command ended."""
