"""The wheel scrolls the form, not the field under the pointer, unless that field has focus (wheel_guard)."""
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import (QApplication, QComboBox, QScrollArea, QSpinBox, QVBoxLayout,  # noqa: E402
                               QWidget)

from grpo_studio.gui.wheel_guard import install_wheel_guard  # noqa: E402

NOTCH = QPoint(0, -120)  # one wheel notch down


@pytest.fixture
def form(qtbot):
    install_wheel_guard(QApplication.instance())
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    body = QWidget()
    column = QVBoxLayout(body)
    spin, combo = QSpinBox(), QComboBox()
    spin.setRange(0, 1000)
    spin.setValue(16)
    combo.addItems(["a", "b", "c"])
    column.addWidget(spin)
    column.addWidget(combo)
    column.addSpacing(3000)  # a long form: there is something to scroll
    scroll.setWidget(body)
    scroll.resize(300, 300)
    qtbot.addWidget(scroll)
    scroll.show()
    qtbot.waitExposed(scroll)
    scroll.setFocus()
    return scroll, spin, combo


def wheel_over(widget: QWidget) -> None:
    window = widget.window().windowHandle()
    QTest.wheelEvent(window, widget.mapTo(widget.window(), widget.rect().center()), NOTCH)
    QApplication.processEvents()


def test_wheel_over_unfocused_fields_scrolls_the_form(form):
    scroll, spin, combo = form
    for field in (spin, combo):
        assert field.focusPolicy() == Qt.FocusPolicy.StrongFocus  # the wheel no longer gives them focus
    before = scroll.verticalScrollBar().value()
    wheel_over(spin)
    wheel_over(combo)
    assert spin.value() == 16 and combo.currentIndex() == 0
    assert not spin.hasFocus() and not combo.hasFocus()
    assert scroll.verticalScrollBar().value() > before


def test_wheel_over_the_focused_field_changes_it(form):
    scroll, spin, combo = form
    spin.setFocus()
    QApplication.processEvents()
    wheel_over(spin)
    assert spin.value() == 15
    combo.setFocus()
    QApplication.processEvents()
    wheel_over(combo)
    assert combo.currentIndex() == 1


def test_installing_twice_adds_one_filter():
    app = QApplication.instance()
    assert install_wheel_guard(app) is install_wheel_guard(app)
