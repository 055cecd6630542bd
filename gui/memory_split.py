"""The New-run page's form above its memory panel, split so that a short window keeps the form usable: below
FULL_PANEL_FROM pixels of height the panel opens on its first line (the verdict and the peak), and the bars,
legend and any "To fit" suggestion are a scroll or a drag away; from there up it opens whole. Once the
user drags the handle, their split stays."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QVBoxLayout, QWidget

from grpo_studio.gui.vram_bar import VramBar

FULL_PANEL_FROM = 820  # px of the split's own height (the form above, the panel below)
MIN_PANEL = 24  # px: a line of text
PANEL_STYLE = "#Card { border-radius: 0; border-left: none; border-right: none; border-bottom: none; }"


class _PanelArea(QScrollArea):
    """A scroll area that may shrink to one line (Qt's own minimum leaves room for both scroll bars)."""

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(super().minimumSizeHint().width(), MIN_PANEL)


class MemorySplit(QSplitter):
    def __init__(self, form: QWidget, vram: VramBar, margin: int, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.vram = vram
        self.dragged = False
        panel = QWidget()
        panel.setObjectName("Card")
        panel.setStyleSheet(PANEL_STYLE)
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(margin, 12, margin, 8)
        layout.addWidget(vram)
        self.panel = _PanelArea()
        self.panel.setWidgetResizable(True)
        self.panel.setFrameShape(QFrame.Shape.NoFrame)
        self.panel.setWidget(panel)
        self.addWidget(form)
        self.addWidget(self.panel)
        self.setCollapsible(0, False)
        self.setCollapsible(1, False)
        self.setStretchFactor(0, 1)
        self.splitterMoved.connect(lambda *_: setattr(self, "dragged", True))
        vram.installEventFilter(self)  # its text changes its height: split anew once it is laid out

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.vram and event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest):
            QTimer.singleShot(0, self, self.fit_panel)  # dropped with the split
        return False

    def panel_height(self) -> int:
        """The panel's height for the split's present height: whole, or down to the end of its first line
        (the bars and legend below it a scroll or a drag away)."""
        content = self.panel.widget()
        assert content is not None  # the panel scrolls one widget, set at construction
        wrapped = content.heightForWidth(self.panel.viewport().width())  # its wrapped lines at today's width
        whole = wrapped if wrapped > 0 else content.sizeHint().height()
        if self.height() >= FULL_PANEL_FROM:
            return whole
        below = [w for w in (self.vram.canvas, self.vram.legend, self.vram.suggestion) if w.isVisible() and w.height()]
        if not below:
            return whole
        next_top = min(w.mapTo(content, QPoint(0, 0)).y() for w in below)
        return max(MIN_PANEL, min(whole, next_top))  # the layout's spacing above it is the line's air

    def fit_panel(self) -> None:
        """Split for the present height and content, unless the user chose a split."""
        total = sum(self.sizes())
        if self.dragged or total <= 0:
            return
        panel = min(self.panel_height(), total // 2)
        self.setSizes([total - panel, panel])

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.fit_panel()
