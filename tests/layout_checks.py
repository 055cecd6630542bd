"""Geometry checks for a laid-out window, as a person would notice them: widgets on top of each other, widgets
squashed below their minimum size, table columns that cannot be seen or scrolled to.

`layout_problems(window)` walks the visible widgets the way a page is built: into plain containers and into a
scroll area's content, but not into the parts of Qt's composite widgets (a spin box's line edit, a table's
header), which Qt lays out itself."""
from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import (QAbstractButton, QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox,
                               QComboBox, QLabel, QLineEdit, QProgressBar, QScrollArea, QTableView, QTabBar,
                               QWidget)

LEAVES = (QAbstractButton, QAbstractScrollArea, QAbstractSpinBox, QAbstractSlider, QComboBox, QLabel, QLineEdit,
          QProgressBar, QTabBar)


def _name(widget: QWidget) -> str:
    text = ""
    for getter in ("text", "title", "accessibleName", "objectName"):
        value = getattr(widget, getter, None)
        value = value() if callable(value) else value
        if isinstance(value, str) and value:
            text = value[:40]
            break
    return f"{type(widget).__name__}({text!r})"


def _children(widget: QWidget) -> list[QWidget]:
    if isinstance(widget, QScrollArea):
        inner = widget.widget()
        return [inner] if inner is not None else []
    if isinstance(widget, LEAVES) or type(widget).__module__.startswith("pyqtgraph"):
        return []
    return [c for c in widget.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
            if not c.isWindow() and not c.isHidden()]


def layout_problems(root: QWidget) -> list[str]:
    problems: list[str] = []
    stack = [root]
    while stack:
        widget = stack.pop()
        children = _children(widget)
        stack.extend(children)
        hint = widget.minimumSizeHint()
        if widget is not root and hint.isValid() and not (isinstance(widget, QLabel) and widget.wordWrap()):
            if widget.width() < hint.width() or widget.height() < hint.height():
                problems.append(f"{_name(widget)} is {widget.width()}x{widget.height()}, below its minimum "
                                f"{hint.width()}x{hint.height()}")
        for i, first in enumerate(children):
            for second in children[i + 1:]:
                overlap = first.geometry().intersected(second.geometry())
                if overlap.width() > 0 and overlap.height() > 0:
                    problems.append(f"{_name(first)} overlaps {_name(second)} by {overlap.width()}x"
                                    f"{overlap.height()} in {_name(widget)}")
        if isinstance(widget, QTableView):
            problems += column_problems(widget)
        if isinstance(widget, QLabel) and widget.wordWrap() and widget.text():
            needed = widget.heightForWidth(widget.width())
            if needed > widget.height() + 2:
                problems.append(f"{_name(widget)} is {widget.height()} px high, its text needs {needed}")
    return problems


def column_problems(table: QTableView) -> list[str]:
    """Every column is on screen, or the horizontal scroll bar reaches it."""
    header = table.horizontalHeader()
    width = table.viewport().width()
    reachable = table.horizontalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    hidden = [header.model().headerData(i, Qt.Orientation.Horizontal) for i in range(header.count())
              if not header.isSectionHidden(i) and header.sectionViewportPosition(i) + header.sectionSize(i) > width
              and not (reachable and table.horizontalScrollBar().maximum() > 0)]
    return [f"{_name(table)}: column {name!r} is off screen and cannot be scrolled to" for name in hidden]


def columns_on_screen(table: QTableView) -> list[str]:
    """The columns a person sees without scrolling."""
    header, width = table.horizontalHeader(), table.viewport().width()
    rect = QRect(0, 0, width, 1)
    return [str(header.model().headerData(i, Qt.Orientation.Horizontal)) for i in range(header.count())
            if not header.isSectionHidden(i) and rect.contains(header.sectionViewportPosition(i) +
                                                               header.sectionSize(i) - 1, 0)]
