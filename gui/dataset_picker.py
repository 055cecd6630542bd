"""Choose the training data: the demo task, a local file or folder, or a hub id (with a Download button
when it is not in the cache yet); see its first rows; map its columns (prompt or question, answer,
optional per-row system prompt) from the columns found."""
from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.engine.common.config import DEMO
from grpo_studio.gui.cli_job import CliJob, error_text
from grpo_studio.gui.dataset_preview import PreviewError, cell_text, quick_preview
from grpo_studio.gui.download_panel import DownloadPanel
from grpo_studio.gui.form_fields import help_text
from grpo_studio.gui.widgets import FieldError, label

NONE = "(none)"
AS_PROMPT, AS_QUESTION = "prompt (text or chat messages)", "question (chat template + system prompt)"
FILE_FILTER = "Datasets (*.jsonl *.json *.csv *.parquet);;All files (*)"


class DatasetPicker(QWidget):
    changed_event = Signal()
    status_event = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.preview: dict | None = None
        self.preview_error: tuple[str, str] | None = None
        self.pending = False
        self._previewed = ""
        self._job: CliJob | None = None
        self._timer = QTimer(self, singleShot=True, interval=300)
        self._timer.timeout.connect(self.load_preview)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        row = QHBoxLayout()
        self.path = QComboBox()
        self.path.setEditable(True)
        self.path.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.path.addItem(DEMO)
        line = self.path.lineEdit()
        assert line is not None  # an editable combo box has one
        line.setPlaceholderText("demo, a .jsonl/.json/.csv/.parquet file or folder, or a hub id")
        self.path.setToolTip(help_text("dataset.path"))
        self.path.setAccessibleName("dataset")
        self.path.currentTextChanged.connect(self._path_changed)
        file_button, folder_button = QPushButton("File…"), QPushButton("Folder…")
        file_button.clicked.connect(self.browse_file_action)
        folder_button.clicked.connect(self.browse_folder_action)
        self.split = QLineEdit()
        self.split.setMaximumWidth(90)
        self.split.setToolTip(help_text("dataset.split"))
        self.split.setPlaceholderText("split")
        self.split.textChanged.connect(self._path_changed)
        row.addWidget(self.path, 1)
        row.addWidget(self.split)
        row.addWidget(file_button)
        row.addWidget(folder_button)
        layout.addLayout(row)
        self.path_error = FieldError()
        self.info = label("", "Muted", wrap=True)
        self.download = DownloadPanel("dataset")
        self.download.downloaded_event.connect(self._downloaded)
        layout.addWidget(self.path_error)
        layout.addWidget(self.info)
        layout.addWidget(self.download)

        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setMaximumHeight(170)
        self.table.setMinimumHeight(110)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table)

        form = QFormLayout()
        form.setVerticalSpacing(6)
        self.prompt_column, self.prompt_error = QComboBox(), FieldError()
        self.prompt_kind = QComboBox()
        self.prompt_kind.addItems([AS_PROMPT, AS_QUESTION])
        self.answer_column, self.answer_error = QComboBox(), FieldError()
        self.system_column, self.system_error = QComboBox(), FieldError()
        self.system_prompt, self.system_prompt_error = QLineEdit(), FieldError()
        self.system_prompt.setPlaceholderText("optional, e.g. Answer with <answer>number</answer>.")
        self.prompt_column.setToolTip(help_text("dataset.prompt_column"))
        self.prompt_kind.setToolTip("A prompt column is used as it is (text, or a list of chat messages); a "
                                    "question column is wrapped in the model's chat template with the system "
                                    "prompt.")
        self.answer_column.setToolTip(help_text("dataset.answer_column"))
        self.system_column.setToolTip(help_text("dataset.system_prompt_column"))
        self.system_prompt.setToolTip(help_text("system_prompt"))
        prompt_row = QHBoxLayout()
        prompt_row.addWidget(self.prompt_column, 1)
        prompt_row.addWidget(label("used as"))
        prompt_row.addWidget(self.prompt_kind, 1)
        form.addRow("Prompt column", _stack(prompt_row, self.prompt_error))
        form.addRow("Answer column", _stack(self.answer_column, self.answer_error))
        form.addRow("System prompt column", _stack(self.system_column, self.system_error))
        form.addRow("System prompt", _stack(self.system_prompt, self.system_prompt_error))
        layout.addLayout(form)
        for combo in (self.prompt_column, self.prompt_kind, self.answer_column, self.system_column):
            combo.currentTextChanged.connect(lambda _: self.changed_event.emit())
        self.system_prompt.textChanged.connect(lambda _: self.changed_event.emit())

    # ------------------------------------------------------------------ config <-> widgets
    def load(self, data: dict, system_prompt: str | None) -> None:
        d = data
        for widget in (self.path, self.split, self.prompt_column, self.prompt_kind, self.answer_column,
                       self.system_column, self.system_prompt):
            widget.blockSignals(True)
        self.path.setCurrentText(str(d.get("path") or ""))
        self.split.setText(str(d.get("split") or "train"))
        question = d.get("question_column")
        _fill(self.prompt_column, self._columns(), question or d.get("prompt_column"), False)
        self.prompt_kind.setCurrentText(AS_QUESTION if question else AS_PROMPT)
        _fill(self.answer_column, self._columns(), d.get("answer_column"), True)
        _fill(self.system_column, self._columns(), d.get("system_prompt_column"), True)
        self.system_prompt.setText(system_prompt or "")
        for widget in (self.path, self.split, self.prompt_column, self.prompt_kind, self.answer_column,
                       self.system_column, self.system_prompt):
            widget.blockSignals(False)
        self._path_changed()

    def store(self, data: dict) -> None:
        d = data["dataset"]
        d["path"] = self.path.currentText().strip()
        d["split"] = self.split.text().strip() or "train"
        column = self.prompt_column.currentText() or None
        if self.prompt_kind.currentText() == AS_QUESTION:
            d["question_column"], d["prompt_column"] = column, d.get("prompt_column") or "prompt"
        else:
            d["prompt_column"], d["question_column"] = column or "", None
        d["answer_column"] = _none(self.answer_column.currentText())
        d["system_prompt_column"] = _none(self.system_column.currentText())
        data["system_prompt"] = self.system_prompt.text().strip() or None

    # ------------------------------------------------------------------ checks
    def errors(self, data: dict, needs_answer: bool) -> dict[str, str]:
        """Problems the config validator cannot see: columns that the dataset does not have."""
        d = data["dataset"]
        if self.preview_error:
            return {"dataset.path": self.preview_error[0] + (f" — {self.preview_error[1]}"
                                                              if self.preview_error[1] else "")}
        if self.preview is None:
            return {}
        columns = self.preview["columns"]
        shown = ", ".join(columns)
        errors = {}
        key = "dataset.question_column" if d.get("question_column") else "dataset.prompt_column"
        column = d.get("question_column") or d.get("prompt_column")
        if column not in columns:
            errors[key] = f"this dataset has no column '{column}' (its columns: {shown})"
        if d.get("answer_column") and d["answer_column"] not in columns:
            errors["dataset.answer_column"] = f"no column '{d['answer_column']}' (its columns: {shown})"
        elif needs_answer and not d.get("answer_column"):
            errors["dataset.answer_column"] = "math_correct compares with a reference answer: choose the answer column"
        if d.get("system_prompt_column") and d["system_prompt_column"] not in columns:
            errors["dataset.system_prompt_column"] = f"no column '{d['system_prompt_column']}' (its columns: {shown})"
        return errors

    def show_errors(self, errors: dict[str, str]) -> None:
        self.path_error.show_error(errors.get("dataset.path") or errors.get("dataset.split"), self.path)
        self.prompt_error.show_error(errors.get("dataset.prompt_column") or errors.get("dataset.question_column"),
                                     self.prompt_column)
        self.answer_error.show_error(errors.get("dataset.answer_column"), self.answer_column)
        self.system_error.show_error(errors.get("dataset.system_prompt_column"), self.system_column)
        self.system_prompt_error.show_error(errors.get("system_prompt"), self.system_prompt)

    # ------------------------------------------------------------------ preview
    def _path_changed(self, *_: object) -> None:
        self.download.set_target(self.path.currentText())
        self._timer.start()

    def _downloaded(self, repo_id: str, folder: str) -> None:
        self.status_event.emit(f"Downloaded {repo_id}")
        self._previewed = ""  # in the cache now: read it again
        self.load_preview()

    def load_preview(self) -> None:
        path, split = self.path.currentText().strip(), self.split.text().strip() or "train"
        key = f"{path}\n{split}"
        if key == self._previewed and not self.pending:
            return
        self._previewed = key
        if self._job is not None:
            self._job.cancel()
            self._job = None
        if not path:
            self._set_preview(None, ("choose a dataset", ""))
            return
        source = path
        if path == DEMO:
            from grpo_studio.engine.common.demo import demo_task_path
            source = str(demo_task_path())
        try:
            result = quick_preview(source)
        except PreviewError as exc:
            self._set_preview(None, (exc.message, exc.hint))
            return
        if result is not None:
            self._set_preview(result, None)
            return
        self.pending = True
        self.info.setText("Reading the dataset…")
        self.changed_event.emit()
        job = CliJob(["preview", "--dataset", path, "--split", split, "--rows", "8", "--json"], self)
        job.finished_event.connect(lambda code, result, err, j=job: self._cli_done(j, code, result, err))
        self._job = job
        job.start()

    def _cli_done(self, job: CliJob, code: int, result: object, stderr: str) -> None:
        if job is not self._job:
            return  # an older request finishing after the user typed on
        self._job = None
        if code == 0 and isinstance(result, dict) and "columns" in result:
            self._set_preview(result, None)
        else:
            self._set_preview(None, error_text(result if isinstance(result, dict) else None, stderr, code))

    def _set_preview(self, preview: dict | None, error: tuple[str, str] | None) -> None:
        self.pending = False
        self.preview, self.preview_error = preview, error
        self.table.clear()
        if preview is None:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            self.info.setText("")
            self.changed_event.emit()
            return
        columns, rows = preview["columns"], preview["rows"]
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        self.table.setRowCount(len(rows))
        for r, record in enumerate(rows):
            for c, column in enumerate(columns):
                item = QTableWidgetItem(cell_text(record.get(column, "")))
                item.setToolTip(cell_text(record.get(column, ""), 2000))
                self.table.setItem(r, c, item)
        self.info.setText(f"{preview.get('num_rows', len(rows)):,} rows · columns: {', '.join(columns)}")
        self._apply_suggestions(columns, preview.get("suggested") or {})
        self.changed_event.emit()

    def _apply_suggestions(self, columns: list[str], suggested: dict) -> None:
        """Keep the user's mapping where the dataset has it; otherwise take the detected column."""
        current = self.prompt_column.currentText()
        question = self.prompt_kind.currentText() == AS_QUESTION
        widgets = (self.prompt_column, self.prompt_kind, self.answer_column, self.system_column)
        for widget in widgets:
            widget.blockSignals(True)
        if current not in columns:
            if suggested.get("prompt_column"):
                current, question = suggested["prompt_column"], False
            elif suggested.get("question_column"):
                current, question = suggested["question_column"], True
        self.prompt_kind.setCurrentText(AS_QUESTION if question else AS_PROMPT)
        _fill(self.prompt_column, columns, current, False)
        answer = _none(self.answer_column.currentText())
        if answer not in columns:
            answer = suggested.get("answer_column") or answer
        _fill(self.answer_column, columns, answer, True)
        system = _none(self.system_column.currentText())
        _fill(self.system_column, columns, system if system in columns else None, True)
        for widget in widgets:
            widget.blockSignals(False)

    def _columns(self) -> list[str]:
        return list(self.preview["columns"]) if self.preview else []

    def browse_file_action(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a dataset file", "", FILE_FILTER)
        if path:
            self.path.setCurrentText(path)

    def browse_folder_action(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a dataset folder")
        if path:
            self.path.setCurrentText(path)


def _fill(combo: QComboBox, columns: list[str], current: str | None, allow_none: bool) -> None:
    """Offer the dataset's columns; a configured column the dataset lacks stays visible (and gets an error)."""
    items = ([NONE] if allow_none else []) + list(columns)
    if current and current not in items:
        items.append(current)
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    combo.setCurrentText(current if current else (NONE if allow_none else ""))
    combo.blockSignals(False)


def _none(text: str) -> str | None:
    return None if not text or text == NONE else text


def _stack(item, error: FieldError) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    if isinstance(item, QWidget):
        layout.addWidget(item)
    else:
        layout.addLayout(item)
    layout.addWidget(error)
    return box
