"""The Monitor's group view: for one step, one prompt's G completions side by side, best to worst, with each
reward function's score, the advantage (what GRPO learns from), the length and whether it was cut off.
Steps are browsed with the arrows or the list; while "Follow the newest step" is on, a live run's newest
group replaces the one shown."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.gui.widgets import fmt_number, label

# the completion stretches; every other column fits its header and values
FIXED = ["#", "Completion", "Reward", "Advantage", "Length", "Cut off"]
EMPTY = ("No group on record yet: every log_samples_every steps the engine sends one prompt's completions, "
         "and they appear here side by side.")
POSITIVE, NEGATIVE = QColor(46, 160, 67, 60), QColor(215, 58, 73, 60)  # advantage tints, light and dark themes


def _short(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def _one_line(text: object, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: object) -> str:
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class GroupView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.groups: list[dict] = []
        self.shown: dict | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 0, 0)
        bar = QHBoxLayout()
        self.previous = QPushButton("◀")
        self.previous.setToolTip("The step before")
        self.steps = QComboBox()
        self.steps.setMinimumContentsLength(12)
        self.next = QPushButton("▶")
        self.next.setToolTip("The step after")
        self.follow = QCheckBox("Follow the newest step")
        self.follow.setChecked(True)
        for button in (self.previous, self.next):
            button.setFixedWidth(36)
        self.previous.clicked.connect(lambda: self._move(-1))
        self.next.clicked.connect(lambda: self._move(1))
        self.steps.activated.connect(self._chosen)
        self.follow.toggled.connect(self._follow_toggled)
        bar.addWidget(self.previous)
        bar.addWidget(self.steps)
        bar.addWidget(self.next)
        bar.addSpacing(12)
        bar.addWidget(self.follow)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.caption = label("", "Muted", wrap=True)
        layout.addWidget(self.caption)

        self.table = QTableWidget(0, len(FIXED))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_completion(row))
        self.detail = QTextBrowser()
        self.detail.setPlaceholderText("Select a completion to read it whole.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setSizes([320, 110])
        layout.addWidget(split, 1)
        self.clear()

    def clear(self) -> None:
        self.groups, self.shown = [], None
        self.steps.clear()
        self.table.setRowCount(0)
        self.detail.clear()
        self.caption.setText(EMPTY)
        self.follow.setChecked(True)
        self._arrows()

    def show_groups(self, groups: list[dict]) -> None:
        """The run's groups, oldest first; cheap when nothing new arrived. Keeps the step the user chose
        unless "Follow the newest step" is on."""
        if len(groups) == len(self.groups) and (not groups or groups[-1] is self.groups[-1]):
            return
        self.groups = list(groups)
        self.steps.clear()
        self.steps.addItems([f"Step {g.get('step')}" for g in self.groups])
        if not self.groups:
            return self.clear()
        kept = next((i for i, g in enumerate(self.groups) if g is self.shown), None)
        self.show_index(len(self.groups) - 1 if self.follow.isChecked() or kept is None else kept)

    def show_index(self, index: int) -> None:
        group = self.groups[index]
        self.shown = group
        self.steps.setCurrentIndex(index)
        rows = group.get("completions") or []
        names = sorted({n for row in rows for n in (row.get("rewards") or {})})
        size = group.get("group_size") or len(rows)
        best = len(rows) // 2
        shown = f"all {len(rows)}" if len(rows) >= size else f"the {best} best and {len(rows) - best} worst of {size}"
        self.caption.setText(f"Prompt: {_one_line(group.get('prompt'))} — {shown} completions, best to worst")
        table = self.table
        table.setColumnCount(len(FIXED) + len(names))
        headers = FIXED[:3] + [_short(n) for n in names] + FIXED[3:]
        table.setHorizontalHeaderLabels(headers)
        completion_column = 1
        for column in range(len(headers)):
            table.horizontalHeader().setSectionResizeMode(
                column, QHeaderView.ResizeMode.Stretch if column == completion_column
                else QHeaderView.ResizeMode.ResizeToContents)
        table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            advantage = row.get("advantage")
            values = [str(r + 1), _one_line(row.get("completion")), fmt_number(row.get("reward"), 3)]
            values += [fmt_number((row.get("rewards") or {}).get(n), 3) for n in names]
            values += [fmt_number(advantage, 3), str(row.get("length", "–")), "cut" if row.get("truncated") else ""]
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column != completion_column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if isinstance(advantage, (int, float)) and advantage != 0:
                    item.setBackground(POSITIVE if advantage > 0 else NEGATIVE)
                table.setItem(r, column, item)
        self.detail.clear()
        self._arrows()

    def _arrows(self) -> None:
        index = self.steps.currentIndex()
        self.previous.setEnabled(index > 0)
        self.next.setEnabled(0 <= index < len(self.groups) - 1)

    def _follow_toggled(self, on: bool) -> None:
        if on and self.groups:
            self.show_index(len(self.groups) - 1)

    def _move(self, by: int) -> None:
        index = self.steps.currentIndex() + by
        if 0 <= index < len(self.groups):
            self._chosen(index)

    def _chosen(self, index: int) -> None:
        # choosing an older step stops following; choosing the newest one follows again
        self.follow.setChecked(index == len(self.groups) - 1)
        self.show_index(index)

    def _show_completion(self, row: int) -> None:
        shown = self.shown or {}
        rows = shown.get("completions") or []
        if not 0 <= row < len(rows):
            return
        c = rows[row]
        scores = "".join(f"<li>{_escape(_short(n))}: {fmt_number(v, 3)}</li>"
                         for n, v in (c.get("rewards") or {}).items())
        cut = " · cut off at the length limit" if c.get("truncated") else ""
        self.detail.setHtml(
            f"<p><b>#{row + 1} of step {shown.get('step')}</b> · reward {fmt_number(c.get('reward'), 3)} · "
            f"advantage {fmt_number(c.get('advantage'), 3)} · {c.get('length')} tokens{cut}</p>"
            f"<pre style='white-space: pre-wrap'>{_escape(c.get('completion'))}</pre><ul>{scores}</ul>"
            f"<p><b>Prompt</b></p><pre style='white-space: pre-wrap'>{_escape(shown.get('prompt'))}</pre>")
