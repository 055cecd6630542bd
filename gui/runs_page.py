"""Runs: the history of runs as a table model over the run store (engine.runs.list_runs); the view stays dumb.
Open a run (its charts from events.jsonl, or live if its engine runs), resume a stopped or crashed one,
delete one (with confirmation) and show its folder."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableView,
    QWidget,
)

from grpo_studio.engine.common import runs as run_store
from grpo_studio.engine.common.protocol import LIVE_STATES
from grpo_studio.gui import theme
from grpo_studio.gui.widgets import (
    EmptyState,
    fmt_duration,
    fmt_number,
    held_out_text,
    open_folder,
    page_header,
    page_layout,
)

RESUMABLE = ("stopped", "crashed", "failed", "damaged")  # damaged: from its newest checkpoint that reads back
WIDE_COLUMNS = (0, 2)  # Run, Model
STATE_TEXT = {"starting": "Starting", "running": "Running", "paused": "Paused", "finished": "Finished",
              "stopped": "Stopped", "failed": "Failed", "crashed": "Crashed", "damaged": "Damaged"}


class RunsModel(QAbstractTableModel):
    COLUMNS = ("Run", "State", "Model", "Dataset", "Progress", "Best reward", "Held-out", "Duration", "Started")
    HELD_OUT = 6  # shown while some run evaluates on held-out data (eval: in its config)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list = []
        self.runs_dir: Path | None = None

    def reload(self) -> None:
        """Re-read the store; keeps the model's rows in the store's order (newest first)."""
        try:
            runs = run_store.list_runs(self.runs_dir)
        except OSError:
            runs = []
        if [(_key(r)) for r in runs] == [(_key(r)) for r in self.runs]:
            return
        self.beginResetModel()
        self.runs = runs
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt's names
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        run = self.runs[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(run, column)
        if role == Qt.ItemDataRole.ForegroundRole and column == 1:
            c = theme.current()
            color = {"running": c.accent, "starting": c.accent, "paused": c.warn, "finished": c.good,
                     "failed": c.bad, "crashed": c.bad, "stopped": c.muted,
                     "damaged": c.bad}.get(run.state, c.text)
            return QColor(color)
        if role == Qt.ItemDataRole.ToolTipRole:
            if run.error:
                return str(run.error)
            if column == 6:
                return ("Held-out accuracy before training (step 0, the base model) → at the latest evaluation"
                        if run.eval_before is not None else "No held-out evaluation: the run's config has no eval:")
            return str(run.model or "–") if column == 2 else str(run.path)
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 4:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        if role == Qt.ItemDataRole.UserRole:
            return run
        return None

    def _text(self, run, column: int) -> str:
        if column == 0:
            return run.name
        if column == 1:
            return STATE_TEXT.get(run.state, str(run.state).capitalize())
        if column == 2:  # the model's own name; the hub owner or the folder is in the tooltip
            return str(run.model or "–").rstrip("/").rsplit("/", 1)[-1]
        if column == 3:
            return _short_path(run.dataset)
        if column == 4:
            return f"{run.step or 0} / {run.total_steps}" if run.total_steps else str(run.step or 0)
        if column == 5:
            return fmt_number(run.best_reward)
        if column == 6:
            return held_out_text(run.eval_before, run.eval_after)
        if column == 7:
            return fmt_duration(run.duration_s)
        if column == 8:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started)) if run.started else "–"
        return ""

    def run_at(self, row: int):
        return self.runs[row] if 0 <= row < len(self.runs) else None


def _key(run) -> tuple:
    return (str(run.path), run.state, run.step, run.best_reward, run.total_steps, run.eval_before, run.eval_after)



def _short_path(value: object) -> str:
    text = str(value or "–")
    return Path(text).name if "/" in text and Path(text).suffix else text


class RunsPage(QWidget):
    open_run_action = Signal(str)    # run folder
    resume_run_action = Signal(str)  # run folder
    new_run_action = Signal()
    status_event = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = RunsModel(self)
        layout = page_layout(self)
        self.open_button = QPushButton("&Open")
        self.open_button.setObjectName("Primary")
        self.resume_button = QPushButton("&Resume")
        self.folder_button = QPushButton("Show &folder")
        self.delete_button = QPushButton("&Delete…")
        self.delete_button.setObjectName("Danger")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Re-read the runs folder (F5)")
        layout.addLayout(page_header("Runs", "Every run in the runs folder. Finished runs open their charts from "
                                     "the record; running ones attach live; stopped or crashed ones resume "
                                     "from their last checkpoint.", [self.refresh_button]))
        self.stack = QStackedWidget()
        self.empty = EmptyState("No runs yet", "Runs you start appear here with their state, best reward and "
                                "duration. The demo trains a tiny model on the CPU in a minute or two.",
                                "Start a new run")
        self.empty.action_event.connect(self.new_run_action)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(30)
        # Every column stays on screen in a small window: the short ones fit their contents, and the run name and
        # the model (long, but their ends say the most) share the rest, elided in the middle; tooltips hold all.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for column in WIDE_COLUMNS:
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.doubleClicked.connect(lambda _: self.open_action())
        self.table.activated.connect(lambda _: self.open_action())
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.table)
        layout.addWidget(self.stack, 1)
        self.damage_note = QLabel()  # what is wrong with the selected run, when it is damaged
        self.damage_note.setObjectName("FieldError")  # the theme's colour for what is wrong
        self.damage_note.setWordWrap(True)
        self.damage_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.damage_note.hide()
        layout.addWidget(self.damage_note)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        layout.addLayout(buttons)
        self.open_button.clicked.connect(self.open_action)
        self.resume_button.clicked.connect(self.resume_action)
        self.folder_button.clicked.connect(self.folder_action)
        self.delete_button.clicked.connect(self.delete_action)
        self.refresh_button.clicked.connect(self.refresh)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._say_damage())
        self.model.modelReset.connect(self._update_buttons)
        self.model.modelReset.connect(self._say_damage)
        self.model.modelReset.connect(lambda: self.table.setColumnHidden(
            RunsModel.HELD_OUT, not any(r.eval_before is not None for r in self.model.runs)))
        QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table, self.delete_action)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Refresh), self, self.refresh)
        self.timer = QTimer(self, interval=3000)  # states change on their own (engines finish, crash)
        self.timer.timeout.connect(self._auto_refresh)
        self.timer.start()
        self._update_buttons()

    def set_runs_dir(self, path: Path | None) -> None:
        self.model.runs_dir = path
        self.refresh()

    def refresh(self) -> None:
        selected = self.selected_run()
        self.model.reload()
        self.stack.setCurrentIndex(1 if self.model.runs else 0)
        if selected is not None:
            self.select(selected.path)
        elif self.model.runs and not self.table.selectionModel().hasSelection():
            self.table.selectRow(0)
        self._update_buttons()

    def _auto_refresh(self) -> None:
        if self.isVisible():
            self.refresh()

    def select(self, path: str | Path) -> None:
        for row, run in enumerate(self.model.runs):
            if Path(run.path) == Path(path):
                self.table.selectRow(row)
                return

    def selected_run(self):
        rows = self.table.selectionModel().selectedRows()
        return self.model.run_at(rows[0].row()) if rows else None

    def _update_buttons(self) -> None:
        run = self.selected_run()
        self.open_button.setEnabled(run is not None)
        self.folder_button.setEnabled(run is not None)
        self.delete_button.setEnabled(run is not None and run.state not in LIVE_STATES)
        self.delete_button.setToolTip("" if run is None or run.state not in LIVE_STATES else
                                      "Stop the run before deleting it")
        self.resume_button.setEnabled(run is not None and run.state in RESUMABLE)

    def _say_damage(self) -> None:
        """A damaged run says what is wrong with it under the table while selected (the tooltip holds it too)."""
        run = self.selected_run()
        damage = getattr(run, "damage", None) if run is not None else None
        self.damage_note.setVisible(bool(damage))
        if damage:
            self.damage_note.setText(f"{run.name}: this run is damaged: {damage}")

    # ------------------------------------------------------------------ actions
    def open_action(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.open_run_action.emit(str(run.path))

    def resume_action(self) -> None:
        run = self.selected_run()
        if run is not None and run.state in RESUMABLE:
            self.resume_run_action.emit(str(run.path))

    def folder_action(self) -> None:
        run = self.selected_run()
        if run is not None and not open_folder(run.path):
            self.status_event.emit(f"Could not open {run.path}")

    def delete_action(self) -> None:
        run = self.selected_run()
        if run is None or run.state in LIVE_STATES:
            return
        answer = QMessageBox.question(
            self, "Delete run", f"Delete the run “{run.name}”?\n\nIts checkpoints, adapter, exports and record "
            f"will be removed from\n{run.path}\n\nThis cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            run_store.delete_run(Path(run.path))
        except Exception as exc:  # noqa: BLE001 - e.g. an engine still owns it: say so, keep the GUI up
            self.status_event.emit(f"Could not delete {run.name}: {exc}")
            return
        self.status_event.emit(f"Deleted {run.name}")
        self.refresh()
