"""Try: one prompt, answered by the base model and by the tuned one side by side as they stream, each
scored by the run's reward functions.

The first Generate starts `grpo-studio chat RUN --serve --json`, which loads the run's model once; every later
Generate is one JSON request to that same process, so only the first one waits for the model. The process ends
when the page is left, the run changes or the app quits (it also exits by itself when its stdin closes).
"""
from __future__ import annotations

from PySide6.QtGui import QHideEvent, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QApplication,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from grpo_studio.gui.adapter_page import AdapterPage
from grpo_studio.gui.widgets import Card, fmt_number, label, page_header, page_layout

SIDES = ("base", "tuned")


class AnswerPanel(Card):
    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__(title, subtitle)
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setPlaceholderText("The answer streams in here.")
        self.text.setMinimumHeight(120)
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


class TryPage(AdapterPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        self.generating = False
        super().__init__("No trained model yet", "Try compares the base model with your tuned one on a prompt of "
                         "your own. Finish (or stop) a run first.", parent)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_engine)

    def _build(self) -> QWidget:
        view = QWidget()
        layout = page_layout(view)
        layout.addLayout(page_header("Try the model", "Ask the base model and the tuned one the same question and "
                                     "compare their answers and rewards."))
        ask = Card()
        form = QFormLayout()
        form.setVerticalSpacing(8)
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
        self.generate_button.setToolTip("Ctrl+Return. The first one loads the model; it then stays loaded while "
                                        "this page is open.")
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

    def request(self) -> dict:
        """The Generate request for the engine (see engine/chat/serve.py)."""
        answer = self.answer.text().strip()
        return {"cmd": "generate", "prompt": self.prompt.toPlainText().strip(), "answer": answer or None,
                "max_new_tokens": self.max_tokens.value(), "temperature": round(self.temperature.value(), 4)}

    def generate_action(self) -> None:
        if self.generating or not self.run.run_dir():
            return
        if not self.prompt.toPlainText().strip():
            self.status_event.emit("Write a prompt first")
            self.prompt.setFocus()
            return
        self.error_panel.hide()
        for panel in self.panels.values():
            panel.clear()
        job = self.job
        loading = job is None
        if job is None:
            job = self.start_job(["chat", self.run.run_dir() or "", "--serve", "--json"])
        job.send(self.request())
        self._set_generating(True)
        self.status_event.emit("Loading the model, then generating…" if loading else "Generating…")

    def stop_action(self) -> None:
        if self.job is not None and self.generating:
            self.job.send({"cmd": "stop"})

    def stop_engine(self) -> None:
        """Let the model go (the page is left, the run changed, the app quits)."""
        job, self.job = self.job, None
        if job is not None:
            job.close()
        self._set_generating(False)

    def _set_generating(self, generating: bool) -> None:
        self.generating = generating
        self.generate_button.setEnabled(not generating)
        self.stop_button.setEnabled(generating)

    def _run_changed(self, run_dir: str) -> None:
        if self.job is not None and self.job.args[1:2] != [run_dir]:
            self.stop_engine()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 - Qt's name
        # Leaving the page frees the model; a minimised window (a spontaneous hide) keeps it.
        if not event.spontaneous():
            self.stop_engine()
        super().hideEvent(event)

    def _line(self, message: dict) -> None:
        kind, side = message.get("type"), message.get("side")
        if kind == "token" and side in self.panels:
            self.panels[side].append(str(message.get("text", "")))
        elif kind == "answer" and side in self.panels:
            self.panels[side].show_answer(message)
        elif kind == "ready":
            self.status_event.emit("Model loaded; generating…")
        elif kind == "done":
            self._set_generating(False)
            self.status_event.emit("Stopped" if message.get("stopped") else "Done")
        elif kind == "log":  # progress notes ("loading the model", "not scored: no answer given")
            self.status_event.emit(str(message.get("message", "")))
        elif kind == "error":
            kind = str(message.get("kind", "crash"))  # finding the base model is shared with export: not one here
            self.error_panel.show_error("load" if kind == "export" else kind, str(message.get("message", "")),
                                        str(message.get("hint") or ""))

    def _finished(self, code: int, last: object, stderr: str) -> None:
        """The engine process ended on its own: it could not load the model, or it crashed."""
        was_generating = self.generating
        self._set_generating(False)
        if code == 0 and not was_generating:
            return
        self.show_failure("crash", code, last, stderr)
        self.status_event.emit("Generation failed")
