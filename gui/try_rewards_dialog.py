"""Try rewards: what each reward function returns on 5 dataset rows, before training. The dialog runs
`grpo-studio try-rewards CONFIG --rows 5 --json` on the form's config and shows rows × functions."""
from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.engine.common.config import TrainConfig, save_config
from grpo_studio.gui.cli_job import CliJob, error_text
from grpo_studio.gui.widgets import FieldError, fmt_number, label


class TryRewardsDialog(QDialog):
    """What each reward function returns on a few rows: completions (or answers) as rows, functions as columns."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Try rewards")
        self.resize(860, 380)
        layout = QVBoxLayout(self)
        self.status = label("Scoring…", "Muted", wrap=True)
        layout.addWidget(self.status)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(True)
        layout.addWidget(self.table, 1)
        self.error = FieldError()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def show_result(self, result: dict) -> None:
        rows, functions = result.get("rows") or [], result.get("functions") or []
        names = [f.get("name", "?") for f in functions] or sorted({n for r in rows for n in r.get("rewards", {})})
        headers = ["Prompt", "Completion"] + [n.rsplit(":", 1)[-1] for n in names] + ["Total"]
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = [str(row.get("prompt", "")), str(row.get("completion", ""))]
            values += [fmt_number((row.get("rewards") or {}).get(n), 2) for n in names]
            values.append(fmt_number(row.get("total"), 2))
            for c, text in enumerate(values):
                item = QTableWidgetItem(" ".join(text.split())[:300])
                item.setToolTip(text[:3000])
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(r, c, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        weights = ", ".join(f"{f.get('name', '?').rsplit(':', 1)[-1]} × {f.get('weight', 1)}" for f in functions)
        self.status.setText(f"{len(rows)} rows scored. Total = weighted sum ({weights})." if rows else "No rows.")

    def show_error(self, message: str, hint: str) -> None:
        self.status.setText("")
        self.error.show_error(message + (f"\nWhat to do: {hint}" if hint else ""))

    def score(self, config: TrainConfig) -> None:
        """Score 5 rows of `config`'s dataset with its reward functions (in a separate process)."""
        path = Path(tempfile.mkdtemp(prefix="grpo-studio-try-")) / "config.yaml"
        save_config(config, path)
        job = CliJob(["try-rewards", str(path), "--rows", "5", "--json"], self)

        def done(code: int, result: object, stderr: str) -> None:
            if code == 0 and isinstance(result, dict) and "rows" in result:
                self.show_result(result)
            else:
                self.show_error(*error_text(result if isinstance(result, dict) else None, stderr, code))

        job.finished_event.connect(done)
        self.finished.connect(job.cancel)
        job.start()
