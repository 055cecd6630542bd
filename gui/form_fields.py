"""Form plumbing for the New run page: the type and metadata of a dotted config field, one editor widget per
config field (spin box, combo, check box, line edit) built from the field's own metadata, each showing its
error underneath (ConfigError.field_messages(): {dotted path: message})."""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.engine.common.config import TrainConfig, field_help, get_path, set_path
from grpo_studio.gui.widgets import FieldError

_HELP = field_help()


def help_text(path: str) -> str:
    return _HELP.get(path, "")


def field_meta(path: str) -> tuple[Any, dict]:
    """(type hint, metadata) of a dotted TrainConfig field."""
    cls: Any = TrainConfig
    *parents, name = path.split(".")
    for parent in parents:
        cls = typing.get_type_hints(cls)[parent]
    hint = typing.get_type_hints(cls)[name]
    meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
    return hint, dict(meta)


class FieldEditor(QWidget):
    """One config field: an editor chosen from its type and metadata, with its error line underneath.
    Optional ints (None = automatic) use 0 as "auto" in a spin box with special-value text."""

    changed_event = Signal()

    def __init__(self, path: str, parent: QWidget | None = None, *, decimals: int = 4,
                 maximum: float | None = None, step: float | None = None, scientific: bool = False,
                 help: str | None = None) -> None:  # noqa: A002 - the tooltip, when the form says it better
        super().__init__(parent)
        self.path = path
        hint, meta = field_meta(path)
        args = typing.get_args(hint)
        self.optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        lo, hi = meta.get("range") or (None, None)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.widget: QWidget
        self._get: Callable[[], Any]
        self._set: Callable[[Any], None]
        if scientific:  # learning rates: "5e-6" reads better than a spin box with seven decimals
            line = QLineEdit()
            line.textChanged.connect(lambda _: self.changed_event.emit())
            self.widget, self._get = line, lambda: _float_or_text(line.text())
            self._set = lambda v: line.setText(f"{float(v):g}")
        elif meta.get("choices"):
            combo = QComboBox()
            combo.addItems(list(meta["choices"]))
            combo.currentTextChanged.connect(lambda _: self.changed_event.emit())
            self.widget, self._get = combo, combo.currentText
            self._set = lambda v: combo.setCurrentText(str(v))
        elif base is bool:
            check = QCheckBox()
            check.toggled.connect(lambda _: self.changed_event.emit())
            self.widget, self._get, self._set = check, check.isChecked, lambda v: check.setChecked(bool(v))
        elif base is int:
            spin = QSpinBox()
            floor = int(lo) if lo is not None else 0
            spin.setRange(floor - 1 if self.optional else floor, int(min(hi if hi is not None else 2**31 - 1,
                                                                         maximum or 2**31 - 1)))
            if self.optional:
                spin.setSpecialValueText("auto")
            spin.valueChanged.connect(lambda _: self.changed_event.emit())
            self.widget = spin
            self._get = lambda: None if self.optional and spin.value() < floor else spin.value()
            self._set = lambda v: spin.setValue(floor - 1 if v is None else int(v))
        elif base is float:
            box = QDoubleSpinBox()
            box.setDecimals(decimals)
            box.setRange(float(lo) if lo is not None else -1e9, float(min(hi if hi is not None else 1e9,
                                                                          maximum or 1e9)))
            box.setSingleStep(step or 0.1)
            box.valueChanged.connect(lambda _: self.changed_event.emit())
            self.widget, self._get, self._set = box, box.value, lambda v: box.setValue(float(v or 0.0))
        else:
            line = QLineEdit()
            line.textChanged.connect(lambda _: self.changed_event.emit())
            self.widget = line
            self._get = lambda: (line.text().strip() or None) if self.optional else line.text()
            self._set = lambda v: line.setText("" if v is None else str(v))
        self.widget.setToolTip(help or help_text(path))
        self.widget.setAccessibleName(path)
        self.error = FieldError()
        layout.addWidget(self.widget)
        layout.addWidget(self.error)

    def value(self) -> Any:
        return self._get()

    def set_value(self, value: Any) -> None:
        self.widget.blockSignals(True)
        try:
            self._set(value)
        finally:
            self.widget.blockSignals(False)

    def show_error(self, text: str | None) -> None:
        self.error.show_error(text, self.widget)


def _float_or_text(text: str) -> Any:
    """A number when it parses; otherwise the text itself, so validation names the field and the value."""
    try:
        return float(text)
    except ValueError:
        return text.strip()


def add_row(form: QFormLayout, text: str, editor: FieldEditor, beside: QWidget | None = None) -> None:
    """The editor's row, its label carrying the field's tooltip; `beside`: a widget next to the editor."""
    field: QWidget | QHBoxLayout = editor
    if beside is not None:
        field = QHBoxLayout()
        field.addWidget(editor, 1)
        field.addWidget(beside, 0, Qt.AlignmentFlag.AlignTop)
    form.addRow(text, field)
    label_widget = form.labelForField(field)
    if isinstance(label_widget, QLabel):  # a row with a text label
        label_widget.setToolTip(editor.widget.toolTip())
        label_widget.setBuddy(editor.widget)


class EditorGroup:
    """Mixed into a panel that keeps its editors by config path in `self.editors`: loads them from and stores
    them into the form's data, and shows errors under them (`reveal_error` makes a hidden one visible)."""

    editors: dict[str, Any]
    changed_event: Any  # the panel's Signal

    def add_editor_columns(self, grid: QGridLayout, columns: list[list[tuple[str, str, dict]]], row: int = 0) -> None:
        """One form per column of `grid`, each field (path, label, FieldEditor options) an editor kept in
        `self.editors` and wired to the panel's changed_event; an option `beside` puts a widget next to it."""
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(24)
        for column, fields in enumerate(columns):
            form = QFormLayout()
            form.setVerticalSpacing(6)
            form.setHorizontalSpacing(14)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            for path, text, options in fields:
                options = dict(options)
                beside = options.pop("beside", None)
                editor = self.editors[path] = FieldEditor(path, **options)
                editor.changed_event.connect(self.changed_event)
                add_row(form, text, editor, beside)
            grid.addLayout(form, row, column)
            grid.setColumnStretch(column, 1)

    def load_editors(self, data: dict) -> None:
        for path, editor in self.editors.items():
            editor.set_value(get_path(data, path))

    def store(self, data: dict) -> None:
        for path, editor in self.editors.items():
            set_path(data, path, editor.value())

    def show_errors(self, errors: dict[str, str]) -> list[str]:
        """Errors under their editors; returns the paths it showed."""
        shown = []
        for path, editor in self.editors.items():
            editor.show_error(errors.get(path))
            if path in errors:
                shown.append(path)
                self.reveal_error(path, editor)
        return shown

    def reveal_error(self, path: str, editor: FieldEditor) -> None:
        """Make the editor of a path with an error visible; the panel says how (default: nothing to do)."""
