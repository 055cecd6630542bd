"""The mouse wheel changes a spin box or a combo box only when that field has focus.

Scrolling a long form passes the wheel over dozens of fields; Qt's default lets each one take the turn (and the
focus), so "prompts per step 16" silently becomes 8. One application-wide filter fixes it for every field in
the app, present and future: fields no longer take focus from the wheel (StrongFocus instead of WheelFocus),
and an unfocused field leaves the wheel event unaccepted, so Qt hands it on to the parents and the scroll area
around the form scrolls. Click or Tab into a field and the wheel adjusts it as before.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox

FIELDS = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind == QEvent.Type.Wheel:
            if isinstance(watched, FIELDS) and not watched.hasFocus():
                event.ignore()
                return True  # not delivered to the field; unaccepted, so Qt propagates it to the parents
        elif kind == QEvent.Type.Polish and isinstance(watched, FIELDS):
            if watched.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        return False


def install_wheel_guard(app: QApplication) -> WheelGuard:
    """Install the guard once on `app` (idempotent); returns it."""
    guard = app.findChild(WheelGuard)
    if guard is None:
        guard = WheelGuard(app)
        app.installEventFilter(guard)
    return guard
