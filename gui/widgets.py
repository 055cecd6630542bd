"""Small widgets and text helpers every page shares: cards, page headers, empty states, the error panel,
inline field errors and human-readable sizes and durations."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QRect, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLayout, QPushButton, QSizePolicy, QVBoxLayout, QWidget

SPACING = 12  # the one gap between blocks; forms use SPACING // 2 between rows
MARGIN = 20


def icon_path() -> str:
    """The app icon (SVG) inside the installed grpo_studio.resources package."""
    from grpo_studio import resources
    return str(Path(resources.__file__).resolve().parent / "icons" / "grpo-studio.svg")


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def fmt_number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def open_folder(path: str | Path) -> bool:
    """Show a folder in the desktop's file manager."""
    path = Path(path)
    if not path.exists():
        return False
    if QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        return True
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    try:  # a fallback for desktops without a registered URL handler
        subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env=os.environ.copy())
        return True
    except OSError:
        return False


def label(text: str = "", name: str | None = None, wrap: bool = False) -> QLabel:
    widget = QLabel(text)
    if name:
        widget.setObjectName(name)
    widget.setWordWrap(wrap)
    return widget


class Card(QFrame):
    """A white rounded panel with an optional title; `body` is its content layout."""

    def __init__(self, title: str = "", subtitle: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Card")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 14, 16, 16)
        outer.setSpacing(SPACING // 2 + 2)
        if title:
            outer.addWidget(label(title, "CardTitle"))
        if subtitle:
            outer.addWidget(label(subtitle, "Muted", wrap=True))
        self.body = QVBoxLayout()
        self.body.setSpacing(SPACING // 2 + 2)
        outer.addLayout(self.body)


def page_header(title: str, subtitle: str, actions: list[QWidget] | None = None) -> QLayout:
    row = QHBoxLayout()
    texts = QVBoxLayout()
    texts.setSpacing(2)
    texts.addWidget(label(title, "PageTitle"))
    texts.addWidget(label(subtitle, "PageSubtitle", wrap=True))
    row.addLayout(texts, 1)
    for widget in actions or []:
        row.addWidget(widget, 0, Qt.AlignmentFlag.AlignBottom)
    return row


def header_labels(header: QLayout) -> tuple[QLabel, QLabel]:
    """The title and subtitle labels of a page_header, for a page that changes them later."""
    column = header.itemAt(0)
    texts = column.layout() if column is not None else None
    items = [texts.itemAt(0), texts.itemAt(1)] if texts is not None else [None, None]
    title, subtitle = (item.widget() if item is not None else None for item in items)
    if not (isinstance(title, QLabel) and isinstance(subtitle, QLabel)):
        raise ValueError("not a page_header layout")
    return title, subtitle


def page_layout(widget: QWidget) -> QVBoxLayout:
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(MARGIN, MARGIN - 4, MARGIN, MARGIN - 4)
    layout.setSpacing(SPACING)
    return layout


class EmptyState(QWidget):
    """A centred title + explanation + optional button, shown where a list or chart has nothing yet."""

    action_event = Signal()

    def __init__(self, title: str, text: str, button: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        box = QWidget()
        box.setFixedWidth(460)  # a fixed width lets the wrapped text report its true height
        layout = QVBoxLayout(box)
        layout.setSpacing(8)
        self.title = label(title, "EmptyTitle")
        self.text = label(text, "Muted", wrap=True)
        for widget in (self.title, self.text):
            widget.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout.addWidget(widget)
        # Wrapped labels on a not-yet-shown stack page under-report their height: reserve it explicitly.
        needed = self.text.fontMetrics().boundingRect(QRect(0, 0, 436, 0), Qt.TextFlag.TextWordWrap, text)
        self.text.setMinimumHeight(needed.height() + 4)
        if button:
            self.button = QPushButton(button)
            self.button.clicked.connect(self.action_event)
            layout.addSpacing(6)
            layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addWidget(box, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)


class FieldError(QLabel):
    """The red line under a form field; hidden while the field is fine."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("FieldError")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_error(self, text: str | None, field: QWidget | None = None) -> None:
        self.setText(text or "")
        self.setVisible(bool(text))
        if field is not None:
            field.setProperty("invalid", bool(text))
            field.style().unpolish(field)
            field.style().polish(field)


class ErrorPanel(QFrame):
    """An engine error as the user should see it: what happened, what to do, and where the details are."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ErrorPanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        self.title = label("", "ErrorTitle")
        self.message = label("", wrap=True)
        self.hint = label("", wrap=True)
        for widget in (self.message, self.hint):
            widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addWidget(self.hint)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.hide()

    TITLES = {"oom": "Out of GPU memory", "data": "Problem with the dataset", "config": "Problem with the settings",
              "reward": "A reward function failed", "crash": "The engine stopped unexpectedly",
              "export": "Export failed", "load": "Could not load the model"}

    def show_error(self, kind: str, message: str, hint: str = "") -> None:
        self.title.setText(self.TITLES.get(kind, "Error"))
        self.message.setText(message)
        self.hint.setText(f"<b>What to do:</b> {hint}" if hint else "")
        self.hint.setVisible(bool(hint))
        self.show()


def held_out_text(before: float | None, after: float | None) -> str:
    """Held-out accuracy "0.23 → 0.92" (one figure while only the base model was evaluated, – for none)."""
    if before is None:
        return "–"
    return f"{before:.2f}" if after is None else f"{before:.2f} → {after:.2f}"
