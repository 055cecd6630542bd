"""The installed Qt binding keeps None's reference count: PySide6 6.12.0 on Python 3.11 does not, and the app
then dies within seconds of drawing live charts (Fatal Python error: none_dealloc)."""
import sys

from grpo_studio.gui.qt_check import PROBE_CALLS, binding_problem, void_calls_drop_none


def test_void_qt_calls_keep_none_alive():
    from PySide6.QtGui import QImage, QPainter, QPen

    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        painter.setPen(QPen())  # what pyqtgraph's AxisItem.drawPicture does many times per frame
    after = sys.getrefcount(None)
    painter.end()
    assert after > before - PROBE_CALLS // 2, "this PySide6 drops a reference to None per void call"
    assert not void_calls_drop_none() and binding_problem() is None
