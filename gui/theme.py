"""Colours, palette and one stylesheet for the whole app, in a light and a dark variant.

Everything that draws (widgets, charts, the VRAM bar) asks `current()` for its colours, so switching the theme
in Settings re-colours the app without a restart. "system" follows the desktop's colour scheme when Qt knows it.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Colors:
    name: str
    window: str
    surface: str
    surface_alt: str
    border: str
    text: str
    muted: str
    accent: str
    accent_text: str
    good: str
    warn: str
    bad: str
    grid: str
    series: tuple[str, ...]  # chart lines, in order: total reward first, then one per reward function


LIGHT = Colors("light", window="#f4f5f7", surface="#ffffff", surface_alt="#f0f1f4", border="#dde0e5",
               text="#1d2129", muted="#5f6673", accent="#4f46e5", accent_text="#ffffff", good="#15803d",
               warn="#b45309", bad="#c62828", grid="#e6e8ec",
               series=("#4f46e5", "#0891b2", "#d97706", "#db2777", "#16a34a", "#7c3aed", "#64748b"))
DARK = Colors("dark", window="#15171b", surface="#1d2026", surface_alt="#252932", border="#323743",
              text="#e7e9ee", muted="#9aa2b1", accent="#818cf8", accent_text="#11131a", good="#4ade80",
              warn="#fbbf24", bad="#f87171", grid="#2b303a",
              series=("#818cf8", "#22d3ee", "#fbbf24", "#f472b6", "#4ade80", "#c084fc", "#94a3b8"))

_current = LIGHT


def current() -> Colors:
    return _current


def resolve(choice: str) -> Colors:
    """'light' / 'dark', or 'system': the desktop's scheme (Qt 6.5+), light when unknown."""
    if choice == "dark":
        return DARK
    if choice == "light":
        return LIGHT
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        scheme = app.styleHints().colorScheme()
        if scheme == Qt.ColorScheme.Dark:
            return DARK
    return LIGHT


def apply(app: QApplication, choice: str = "system") -> Colors:
    """Set palette + stylesheet on the application; returns the colours now in use."""
    global _current
    colors = resolve(choice)
    _current = colors
    app.setStyle("Fusion")  # the same look on every platform; native styles ignore much of the stylesheet
    app.setPalette(_palette(colors))
    app.setStyleSheet(stylesheet(colors))
    return colors


def _palette(c: Colors) -> QPalette:
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: c.window, QPalette.ColorRole.WindowText: c.text,
        QPalette.ColorRole.Base: c.surface, QPalette.ColorRole.AlternateBase: c.surface_alt,
        QPalette.ColorRole.Text: c.text, QPalette.ColorRole.Button: c.surface,
        QPalette.ColorRole.ButtonText: c.text, QPalette.ColorRole.Highlight: c.accent,
        QPalette.ColorRole.HighlightedText: c.accent_text, QPalette.ColorRole.ToolTipBase: c.surface,
        QPalette.ColorRole.ToolTipText: c.text, QPalette.ColorRole.PlaceholderText: c.muted,
        QPalette.ColorRole.Link: c.accent, QPalette.ColorRole.Mid: c.border,
    }
    for role, value in roles.items():
        p.setColor(role, QColor(value))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(c.muted))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(c.muted))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(c.muted))
    return p


def stylesheet(c: Colors) -> str:
    # Object names used here: #Sidebar, #PageTitle, #PageSubtitle, #Card, #CardTitle, #Muted, #FieldError,
    # #ErrorPanel, #Primary (main button), #Danger, #StatValue, #StatLabel, #EmptyTitle.
    return f"""
    QWidget {{ font-size: 10pt; }}
    QMainWindow, QDialog {{ background: {c.window}; }}
    QToolTip {{ background: {c.surface}; color: {c.text}; border: 1px solid {c.border}; padding: 6px; }}
    #Sidebar {{ background: {c.surface}; border: none; border-right: 1px solid {c.border}; outline: 0;
                padding: 8px 6px; }}
    #Sidebar::item {{ padding: 9px 14px; margin: 2px 0; border-radius: 6px; color: {c.text}; }}
    #Sidebar::item:selected {{ background: {c.accent}; color: {c.accent_text}; }}
    #Sidebar::item:hover:!selected {{ background: {c.surface_alt}; }}
    #Brand {{ font-size: 12pt; font-weight: 600; padding: 14px 16px 6px 16px; background: {c.surface};
              border-right: 1px solid {c.border}; }}
    #PageTitle {{ font-size: 16pt; font-weight: 600; }}
    #PageSubtitle, #Muted {{ color: {c.muted}; }}
    #Card {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 8px; }}
    #CardTitle {{ font-weight: 600; font-size: 10.5pt; }}
    #FieldError {{ color: {c.bad}; font-size: 9pt; }}
    #ErrorPanel {{ background: {_mix(c.bad, c.surface, 0.1)}; border: 1px solid {c.bad}; border-radius: 8px; }}
    #ErrorTitle {{ color: {c.bad}; font-weight: 600; font-size: 11pt; }}
    #StatValue {{ font-size: 14pt; font-weight: 600; }}
    #StatLabel {{ color: {c.muted}; font-size: 8.5pt; }}
    #EmptyTitle {{ font-size: 12pt; font-weight: 600; color: {c.muted}; }}
    QPushButton {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 6px; padding: 6px 14px;
                   min-height: 18px; }}
    QPushButton:hover {{ border-color: {c.accent}; }}
    QPushButton:focus {{ border: 1px solid {c.accent}; }}
    QPushButton:disabled {{ color: {c.muted}; background: {c.surface_alt}; }}
    QPushButton#Primary {{ background: {c.accent}; color: {c.accent_text}; border: 1px solid {c.accent};
                           font-weight: 600; padding: 7px 20px; }}
    QPushButton#Primary:disabled {{ background: {c.border}; border-color: {c.border}; color: {c.muted}; }}
    QPushButton#Danger {{ color: {c.bad}; }}
    QPushButton#Danger:disabled {{ color: {c.muted}; }}
    QLineEdit, QPlainTextEdit, QTextEdit {{
        background: {c.surface}; border: 1px solid {c.border}; border-radius: 5px; padding: 4px 6px;
        selection-background-color: {c.accent}; selection-color: {c.accent_text}; }}
    QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus {{ border: 1px solid {c.accent}; }}
    QSpinBox, QDoubleSpinBox, QComboBox {{ min-height: 22px; }}
    QLineEdit[invalid="true"], QComboBox[invalid="true"], QSpinBox[invalid="true"],
    QDoubleSpinBox[invalid="true"] {{ border: 1px solid {c.bad}; }}
    QTableView, QListView, QTreeView {{ background: {c.surface}; border: 1px solid {c.border}; border-radius: 6px;
        gridline-color: {c.grid}; alternate-background-color: {c.surface_alt};
        selection-background-color: {_mix(c.accent, c.surface, 0.22)}; selection-color: {c.text}; }}
    QHeaderView::section {{ background: {c.surface_alt}; color: {c.muted}; border: none;
        border-bottom: 1px solid {c.border}; padding: 5px 8px; font-weight: 600; }}
    QTabWidget::pane {{ border: 1px solid {c.border}; border-radius: 6px; background: {c.surface}; top: -1px; }}
    QTabBar::tab {{ padding: 6px 14px; border: none; color: {c.muted}; }}
    QTabBar::tab:selected {{ color: {c.text}; border-bottom: 2px solid {c.accent}; }}
    QProgressBar {{ border: 1px solid {c.border}; border-radius: 5px; background: {c.surface_alt};
                    text-align: center; height: 16px; }}
    QProgressBar::chunk {{ background: {c.accent}; border-radius: 4px; }}
    QScrollArea {{ border: none; background: transparent; }}
    QScrollArea > QWidget > QWidget {{ background: transparent; }}
    QStatusBar {{ background: {c.surface}; border-top: 1px solid {c.border}; color: {c.muted}; }}
    QGroupBox {{ border: none; margin-top: 0; }}
    QCheckBox {{ spacing: 6px; }}
    """


def _mix(a: str, b: str, amount: float) -> str:
    """`amount` of colour a over colour b (for tinted backgrounds that work in both themes)."""
    ca, cb = QColor(a), QColor(b)
    r = round(ca.red() * amount + cb.red() * (1 - amount))
    g = round(ca.green() * amount + cb.green() * (1 - amount))
    bl = round(ca.blue() * amount + cb.blue() * (1 - amount))
    return QColor(r, g, bl).name()


def mix(a: str, b: str, amount: float) -> str:
    return _mix(a, b, amount)
