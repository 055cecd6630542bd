"""Render resources/icons/grpo-studio.svg to the PNG sizes desktops and the tray use.

Run after changing the SVG: `.venv/bin/python scripts/render_icons.py` (needs only PySide6)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - QPainter on images needs an application
    renderer = QSvgRenderer(str(ICONS / "grpo-studio.svg"))
    if not renderer.isValid():
        print("invalid SVG", file=sys.stderr)
        return 1
    out = ICONS / "png"
    out.mkdir(exist_ok=True)
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(out / f"grpo-studio-{size}.png"))
    print(f"wrote {len(SIZES)} PNGs to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
