"""The New-run page's held-out evaluation: questions the run never trains on, answered before training, every N
steps and at the end, scored with the run's own rewards (the config's `eval:` section). Off until a held-out
file or a split is named; the Monitor then charts the accuracy and the Runs page shows before → after."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QGridLayout, QPushButton, QWidget

from grpo_studio.gui.dataset_picker import FILE_FILTER
from grpo_studio.gui.form_fields import EditorGroup, FieldEditor
from grpo_studio.gui.widgets import label


class EvalPanel(QWidget, EditorGroup):
    changed_event = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editors: dict[str, FieldEditor] = {}
        browse = QPushButton("File…")  # beside the held-out file's field
        browse.setToolTip("Choose a held-out file with the training data's columns")
        browse.clicked.connect(self._browse)
        grid = QGridLayout(self)
        # (dotted path, label, editor options): where the questions come from | how many, how often, how
        self.add_editor_columns(grid, [
            [("eval.path", "Held-out file", {"beside": browse}), ("eval.split", "or a split", {})],
            [("eval.num_prompts", "Questions", {}), ("eval.every", "Every N steps", {}),
             ("eval.greedy", "Greedy answers", {})]])
        for editor in self.editors.values():
            editor.changed_event.connect(self._refresh)
        grid.addWidget(label("For example a test.jsonl beside the training file, or the split 'test', or "
                             "'train[90%:]' with the dataset's split set to 'train[:90%]'.", "Muted", wrap=True), 1, 0)
        self.state = label("", "Muted", wrap=True)
        grid.addWidget(self.state, 1, 1)
        self._refresh()

    def load(self, data: dict) -> None:
        self.load_editors(data)
        self._refresh()

    def _refresh(self) -> None:
        on = bool(self.editors["eval.path"].value() or self.editors["eval.split"].value())
        for path in ("eval.num_prompts", "eval.every", "eval.greedy"):
            self.editors[path].setEnabled(on)
        self.state.setText("On: the Monitor charts held-out accuracy, before training and as it learns." if on
                           else "Off: name a held-out file or a split to score the model on questions it never "
                                "trains on.")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a held-out data file", "", FILE_FILTER)
        if path:
            self.editors["eval.path"].set_value(path)
            self._refresh()
            self.changed_event.emit()
