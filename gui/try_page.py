"""Try: one prompt, answered by the base model and by the tuned one side by side as they stream, each
scored by the run's reward functions (`grpo-studio chat RUN --json`)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (QDoubleSpinBox, QFormLayout, QHBoxLayout, QLineEdit, QPlainTextEdit, QPushButton,
                               QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from grpo_studio.gui.cli_job import CliJob, error_text
from grpo_studio.gui.run_choice import RunChoice
from grpo_studio.gui.widgets import Card, EmptyState, ErrorPanel, fmt_number, label, page_header, page_layout

SIDES = ("base", "tuned")


class AnswerPanel(Card):
    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__(title, subtitle)
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setPlaceholderText("The answer streams in here.")
        self.rewards = label("", "Muted", wrap=True)
        self.body.addWidget(self.text, 1)
        self.body.addWidget(self.rewards)

    def clear(self) -> None:
        self.text.clear()
        self.rewards.setText("")

    def append(self, text: str) -> None:
        cursor = self.text.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self.text.setTextCursor(cursor)

    def show_answer(self, message: dict) -> None:
        if message.get("text") is not None and not self.text.toPlainText():
            self.text.setPlainText(str(message["text"]))
        parts = [f"{name.rsplit(':', 1)[-1]} {fmt_number(value, 2)}"
                 for name, value in (message.get("rewards") or {}).items()]
        total = message.get("reward")
        self.rewards.setText(f"<b>Reward {fmt_number(total, 2)}</b>" + (" · " + " · ".join(parts) if parts else ""))


class TryPage(QWidget):
    status_event = Signal(str)
    show_runs_action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_dir: Path | None = None
        self.job: CliJob | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        outer.addWidget(self.stack)
        self.empty = EmptyState("No trained model yet", "Try compares the base model with your tuned one on a "
                                "prompt of your own. Finish (or stop) a run first.", "Open Runs")
        self.empty.action_event.connect(self.show_runs_action)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self._build())

    def _build(self) -> QWidget:
        view = QWidget()
        layout = page_layout(view)
        layout.addLayout(page_header("Try the model", "Ask the base model and the tuned one the same question and "
                                     "compare their answers and rewards."))
        ask = Card()
        form = QFormLayout()
        form.setVerticalSpacing(8)
        self.run = RunChoice()
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("A question like the ones in the training data, e.g. 7+5=")
        self.prompt.setMaximumHeight(90)
        self.answer = QLineEdit()
        self.answer.setPlaceholderText("optional: the reference answer, so the rewards can score both replies")
        options = QHBoxLayout()
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 32768)
        self.max_tokens.setValue(256)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 5.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(0.7)
        options.addWidget(label("Max new tokens"))
        options.addWidget(self.max_tokens)
        options.addSpacing(16)
        options.addWidget(label("Temperature"))
        options.addWidget(self.temperature)
        options.addStretch(1)
        self.generate_button = QPushButton("Generate")
        self.generate_button.setObjectName("Primary")
        self.generate_button.setToolTip("Ctrl+Return")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        options.addWidget(self.stop_button)
        options.addWidget(self.generate_button)
        form.addRow("Run", self.run)
        form.addRow("Prompt", self.prompt)
        form.addRow("Answer", self.answer)
        ask.body.addLayout(form)
        ask.body.addLayout(options)
        layout.addWidget(ask)
        self.error_panel = ErrorPanel()
        layout.addWidget(self.error_panel)
        answers = QHBoxLayout()
        answers.setSpacing(12)
        self.panels = {"base": AnswerPanel("Base model", "without the adapter"),
                       "tuned": AnswerPanel("Tuned", "base + this run's LoRA adapter")}
        for side in SIDES:
            answers.addWidget(self.panels[side], 1)
        layout.addLayout(answers, 1)
        self.generate_button.clicked.connect(self.generate_action)
        self.stop_button.clicked.connect(self.stop_action)
        shortcut = QShortcut(QKeySequence("Ctrl+Return"), view)
        shortcut.activated.connect(self.generate_action)
        return view

    def set_runs_dir(self, runs_dir: Path | None) -> None:
        self.runs_dir = runs_dir
        self.reload()

    def reload(self) -> None:
        self.run.reload(self.runs_dir)
        self.stack.setCurrentIndex(1 if self.run.count() else 0)

    def select_run(self, run_dir: str) -> None:
        self.reload()
        self.run.select(run_dir)

    def arguments(self) -> list[str]:
        args = ["chat", self.run.run_dir() or "", "--prompt", self.prompt.toPlainText().strip(),
                "--max-new-tokens", str(self.max_tokens.value()), "--temperature", f"{self.temperature.value():g}"]
        if self.answer.text().strip():
            args += ["--answer", self.answer.text().strip()]
        return args + ["--json"]

    def generate_action(self) -> None:
        if self.job is not None or not self.run.run_dir():
            return
        if not self.prompt.toPlainText().strip():
            self.status_event.emit("Write a prompt first")
            self.prompt.setFocus()
            return
        self.error_panel.hide()
        for panel in self.panels.values():
            panel.clear()
        self.job = CliJob(self.arguments(), self)
        self.job.line_event.connect(self._line)
        self.job.finished_event.connect(self._finished)
        self.job.start()
        self.generate_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status_event.emit("Loading the model and generating…")

    def stop_action(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def _line(self, message: dict) -> None:
        kind, side = message.get("type"), message.get("side")
        if kind == "token" and side in self.panels:
            self.panels[side].append(str(message.get("text", "")))
        elif kind == "answer" and side in self.panels:
            self.panels[side].show_answer(message)
        elif kind == "log":  # progress notes ("loading the model", "not scored: no answer given")
            self.status_event.emit(str(message.get("message", "")))
        elif kind == "error":
            self.error_panel.show_error(str(message.get("kind", "crash")), str(message.get("message", "")),
                                        str(message.get("hint") or ""))

    def _finished(self, code: int, last: object, stderr: str) -> None:
        self.job = None
        self.generate_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if code == 0:
            self.status_event.emit("Done")
            return
        if not self.error_panel.isVisible():
            message, hint = error_text(last if isinstance(last, dict) else None, stderr, code)
            self.error_panel.show_error("crash", message, hint)
        self.status_event.emit("Generation failed")
