"""The Monitor's Samples tab: one row per logged completion (newest first) with its rewards, and the whole
prompt and completion of the selected row below."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QWidget,
)

from grpo_studio.gui.widgets import fmt_number

FIXED = ["Step", "Prompt", "Completion", "Reward"]
TEXT_COLUMNS = (1, 2)  # prompt and completion share the width; every other column fits its header


class SamplesView(QSplitter):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.samples: list[dict] = []
        self.table = QTableWidget(0, len(FIXED))
        self._set_columns([])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_sample(row))
        self.detail = QTextBrowser()
        self.detail.setPlaceholderText("Select a sample to read the whole prompt and completion.")
        self.addWidget(self.table)
        self.addWidget(self.detail)
        self.setSizes([300, 160])

    def clear(self) -> None:
        self.samples = []
        self.table.setRowCount(0)
        self.detail.clear()

    def show_samples(self, samples: list[dict]) -> None:
        """Show `samples` (oldest first, as logged); cheap when nothing new arrived."""
        if len(samples) == len(self.samples) and (not samples or samples[-1] is self.samples[-1]):
            return
        self.samples = list(samples)
        names = sorted({n for s in samples for n in (s.get("rewards") or {})})
        table = self.table
        self._set_columns(names)
        table.setRowCount(len(samples))
        for row, sample in enumerate(reversed(samples)):  # newest first
            values = [str(sample.get("step", "")), _one_line(sample.get("prompt")),
                      _one_line(sample.get("completion")), fmt_number(sample.get("reward"), 2)]
            values += [fmt_number((sample.get("rewards") or {}).get(n), 2) for n in names]
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column not in TEXT_COLUMNS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                table.setItem(row, column, item)

    def _set_columns(self, reward_names: list[str]) -> None:
        """The fixed columns and one per reward function; headers are never cut (ResizeToContents)."""
        table = self.table
        table.setColumnCount(len(FIXED) + len(reward_names))
        table.setHorizontalHeaderLabels(FIXED + [_short(n) for n in reward_names])
        header = table.horizontalHeader()
        for column in range(table.columnCount()):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch if column in TEXT_COLUMNS
                                        else QHeaderView.ResizeMode.ResizeToContents)

    def _show_sample(self, row: int) -> None:
        if row < 0 or row >= len(self.samples):
            return
        sample = self.samples[len(self.samples) - 1 - row]
        rewards = "".join(f"<li>{_short(name)}: {fmt_number(v, 3)}</li>"
                          for name, v in (sample.get("rewards") or {}).items())
        self.detail.setHtml(
            f"<p><b>Step {sample.get('step')}</b> · reward {fmt_number(sample.get('reward'), 3)}</p>"
            f"<p><b>Prompt</b></p><pre>{_escape(sample.get('prompt'))}</pre>"
            f"<p><b>Completion</b></p><pre>{_escape(sample.get('completion'))}</pre><ul>{rewards}</ul>")


def _short(name: str) -> str:
    """`/path/rewards.py:answer_format` -> `answer_format`."""
    return name.rsplit(":", 1)[-1]


def _one_line(text: object, limit: int = 120) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: object) -> str:
    return str(text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
