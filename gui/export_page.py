"""Export: turn a run's LoRA adapter into files other tools load — a GGUF adapter for llama.cpp, an Ollama
Modelfile on top of a base GGUF, or a merged safetensors model — through `grpo-studio export --json`."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from grpo_studio.engine.common.export_target import existing_targets
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.gui.adapter_page import AdapterPage
from grpo_studio.gui.widgets import Card, fmt_bytes, label, open_folder, page_header, page_layout

OUTTYPES = ("f16", "bf16", "f32", "q8_0")


class ExportPage(AdapterPage):
    def __init__(self, parent: QWidget | None = None) -> None:
        self.files: list[dict] = []
        self.ollama_command: str | None = None
        super().__init__("Nothing to export yet", "Export needs a run with a trained adapter. Finish (or stop) a "
                         "run first; its adapter then appears here.", parent)

    def _build(self) -> QWidget:
        view = QWidget()
        layout = page_layout(view)
        layout.addLayout(page_header("Export", "Take the trained adapter to llama.cpp or Ollama as GGUF, or merge "
                                     "it into a full model folder."))
        source = Card("Run")
        source.body.addWidget(self.run)
        layout.addWidget(source)

        formats = Card("Formats")
        form = QFormLayout()
        form.setVerticalSpacing(8)
        self.gguf = QCheckBox("GGUF LoRA adapter (llama.cpp --lora, Ollama ADAPTER)")
        self.gguf.setChecked(True)
        self.outtype = QComboBox()
        self.outtype.addItems(OUTTYPES)
        self.outtype.setToolTip("f16 is the usual choice; q8_0 halves the file again")
        self.gguf_path = QLineEdit()
        self.gguf_path.setPlaceholderText("default: RUN/exports/adapter-<type>.gguf")
        self.ollama = QCheckBox("Ollama Modelfile on a base model GGUF")
        self.ollama_base = QLineEdit()
        self.ollama_base.setPlaceholderText("the base model as .gguf (the same model the run trained)")
        self.merged = QCheckBox("Merged model folder (safetensors, base + adapter)")
        self.merged_path = QLineEdit()
        self.merged_path.setPlaceholderText("default: RUN/exports/merged")
        form.addRow(self.gguf)
        form.addRow("Type", self.outtype)
        form.addRow("GGUF file", _with_browse(self.gguf_path, self._browse_save))
        form.addRow(self.ollama)
        form.addRow("Base GGUF", _with_browse(self.ollama_base, self._browse_base))
        form.addRow(self.merged)
        form.addRow("Folder", _with_browse(self.merged_path, self._browse_folder))
        formats.body.addLayout(form)
        for check in (self.gguf, self.ollama, self.merged):
            check.toggled.connect(self._update_enabled)
        self.ollama_base.textChanged.connect(self._update_enabled)
        layout.addWidget(formats)

        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("Primary")
        self.export_button.clicked.connect(self.export_action)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_action)
        self.cancel_button.setEnabled(False)
        self.problem = label("", "FieldError", wrap=True)
        buttons.addWidget(self.problem, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)

        layout.addWidget(self.error_panel)
        results = Card("Files")
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["File", "Kind", "Size"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(90)
        results.body.addWidget(self.table)
        self.ollama_line = label("", wrap=True)
        self.ollama_line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(self.ollama_line, 1)
        self.copy_button = QPushButton("Copy command")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.ollama_command or ""))
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(self._open_folder)
        row.addWidget(self.copy_button)
        row.addWidget(self.folder_button)
        results.body.addLayout(row)
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumHeight(120)
        self.log.setPlaceholderText("Export progress appears here.")
        results.body.addWidget(self.log)
        layout.addWidget(results, 1)
        self._show_result(None)
        self._update_enabled()
        return view

    # ------------------------------------------------------------------ state
    def _run_changed(self, _run_dir: str) -> None:
        self._show_result(None)
        self.error_panel.hide()
        self.log.clear()

    def _update_enabled(self) -> None:
        self.outtype.setEnabled(self.gguf.isChecked())
        self.gguf_path.setEnabled(self.gguf.isChecked())
        self.ollama_base.setEnabled(self.ollama.isChecked())
        self.merged_path.setEnabled(self.merged.isChecked())
        problem = ""
        if not (self.gguf.isChecked() or self.ollama.isChecked() or self.merged.isChecked()):
            problem = "Choose at least one format"
        elif self.ollama.isChecked() and not self.ollama_base.text().strip():
            problem = "Ollama needs the base model as a GGUF file"
        self.problem.setText(problem)
        running = self.job is not None
        self.export_button.setEnabled(not problem and not running)
        self.cancel_button.setEnabled(running)

    def arguments(self) -> list[str]:
        run_dir = self.run.run_dir() or ""
        args = ["export", run_dir]
        if self.gguf.isChecked() or self.ollama.isChecked():
            out = self.gguf_path.text().strip() or str(RunPaths(Path(run_dir)).exports /
                                                        f"adapter-{self.outtype.currentText()}.gguf")
            args += ["--gguf", out, "--outtype", self.outtype.currentText()]
        if self.ollama.isChecked():
            args += ["--ollama", self.ollama_base.text().strip()]
        if self.merged.isChecked():
            args += ["--merged", self.merged_path.text().strip() or str(RunPaths(Path(run_dir)).exports / "merged")]
        return args + ["--json"]

    # ------------------------------------------------------------------ running
    def export_action(self) -> None:
        if self.job is not None or not self.run.run_dir():
            return
        args = self._with_replace_consent(self.arguments())
        if args is None:
            return
        self._show_result(None)
        self.log.clear()
        self.start_job(args)
        self._update_enabled()
        self.status_event.emit("Exporting…")

    def _with_replace_consent(self, args: list[str]) -> list[str] | None:
        """The export's arguments, with --force once the user agreed to replace what is already there; None
        when they did not (the export writes nothing then)."""
        files = [Path(args[args.index("--gguf") + 1])] if "--gguf" in args else []
        if "--ollama" in args:
            files.append(files[0].expanduser().parent / "Modelfile")
        folders = [Path(args[args.index("--merged") + 1])] if "--merged" in args else []
        there = existing_targets(files, folders)
        if not there:
            return args
        listed = "\n".join(str(path) for path in there)
        these, them = ("This already exists", "it") if len(there) == 1 else ("These already exist", "them")
        answer = QMessageBox.question(
            self, "Replace existing export?",
            f"{these}:\n{listed}\n\nReplace {them}? (Files and folders GRPO Studio did not write are never "
            "replaced; the export stops with a message instead.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            self.status_event.emit("Export cancelled: nothing replaced")
            return None
        return [*args[:-1], "--force", args[-1]]

    def cancel_action(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status_event.emit("Export cancelled")

    def _line(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "log":
            self.log.appendPlainText(str(message.get("message", "")))
        elif kind == "result":
            self._show_result(message)
        elif kind == "error":
            self.error_panel.show_error("export", str(message.get("message", "")), str(message.get("hint") or ""))

    def _text(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _finished(self, code: int, last: object, stderr: str) -> None:
        self._update_enabled()
        if code == 0 and self.files:
            self.status_event.emit(f"Exported {len(self.files)} file{'s' if len(self.files) != 1 else ''}")
            return
        self.show_failure("export", code, last, stderr)
        self.status_event.emit("Export failed")

    def _show_result(self, result: dict | None) -> None:
        self.files = list((result or {}).get("files") or [])
        self.ollama_command = (result or {}).get("ollama_command")
        self.table.setRowCount(len(self.files))
        for row, item in enumerate(self.files):
            for column, text in enumerate((str(item.get("path", "")), str(item.get("kind", "")),
                                           fmt_bytes(item.get("bytes")))):
                cell = QTableWidgetItem(text)
                if column == 2:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, cell)
        self.ollama_line.setText(f"Run it with Ollama: <code>{self.ollama_command}</code>"
                                 if self.ollama_command else "")
        self.copy_button.setVisible(bool(self.ollama_command))
        self.folder_button.setEnabled(bool(self.files))

    def _open_folder(self) -> None:
        if self.files:
            path = Path(self.files[0]["path"])
            open_folder(path if path.is_dir() else path.parent)

    # ------------------------------------------------------------------ file pickers
    def _browse_save(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "GGUF adapter file", edit.text(), "GGUF (*.gguf)")
        if path:
            edit.setText(path)

    def _browse_base(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base model GGUF", "", "GGUF (*.gguf)")
        if path:
            edit.setText(path)

    def _browse_folder(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Merged model folder")
        if path:
            edit.setText(path)


def _with_browse(edit: QLineEdit, handler) -> QWidget:
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.addWidget(edit, 1)
    button = QPushButton("Browse…")
    button.clicked.connect(lambda: handler(edit))
    row.addWidget(button)
    return box
