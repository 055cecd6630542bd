"""A combo box of runs that have a trained adapter (for Export and Try), newest first."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QWidget

from grpo_studio.engine.common import runs as run_store
from grpo_studio.engine.common.runs import RunPaths


def runs_with_adapter(runs_dir: Path | None) -> list:
    try:
        runs = run_store.list_runs(runs_dir)
    except OSError:
        return []
    return [r for r in runs if RunPaths(Path(r.path)).adapter.is_dir()]  # the store's order: newest first


class RunChoice(QComboBox):
    run_changed_event = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(320)
        self.setToolTip("Runs that have a trained adapter (finished, or stopped after a checkpoint)")
        self.currentIndexChanged.connect(lambda _: self.run_changed_event.emit(self.run_dir() or ""))

    def reload(self, runs_dir: Path | None) -> None:
        current = self.run_dir()
        self.blockSignals(True)
        self.clear()
        for run in runs_with_adapter(runs_dir):
            reward = f" · best reward {run.best_reward:.2f}" if run.best_reward is not None else ""
            self.addItem(f"{run.name} ({run.model}{reward})", str(run.path))
        if current:
            self.select(current)
        self.blockSignals(False)
        if self.run_dir() != current:  # re-reading the list (each visit to the page) keeps the page's results
            self.run_changed_event.emit(self.run_dir() or "")

    def select(self, run_dir: str | Path) -> None:
        index = self.findData(str(run_dir))
        if index >= 0:
            self.setCurrentIndex(index)

    def run_dir(self) -> str | None:
        data = self.currentData()
        return str(data) if data else None
