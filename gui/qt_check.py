"""Refuse a Qt binding that would crash the app mid-run, with a message that says how to fix it.

PySide6 6.12.0's libshiboken returns None from every void method without taking a new reference. Where None
is immortal (Python >= 3.12) nobody notices; on Python 3.11 each call of e.g. QPainter.setPen takes one
reference away from None, and after a few tens of thousands of calls (seconds of live charts) Python aborts
with "Fatal Python error: none_dealloc". pyproject.toml keeps that version out; this catches an environment
that got it anyway (a manual `pip install -U`), before any chart is drawn.
"""
from __future__ import annotations

import sys

PROBE_CALLS = 64


def void_calls_drop_none() -> bool:
    """True when calling a void-returning Qt method loses a reference to None (the 6.12.0 bug)."""
    from PySide6.QtGui import QPen

    pen = QPen()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        pen.setWidth(1)
    return sys.getrefcount(None) <= before - PROBE_CALLS // 2


def binding_problem() -> str | None:
    """A sentence for the user when this PySide6 would crash the app, else None."""
    if not void_calls_drop_none():
        return None
    import PySide6

    return (f"PySide6 {PySide6.__version__} has a reference-counting bug that crashes GRPO Studio on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} within seconds of drawing a chart. Install the "
            "version the project pins: python -m pip install 'PySide6-Essentials<6.12' (or run "
            "`python3 bootstrap.py run`, which does).")
