"""The New-run form stays usable in a short window: at 1000x700 the memory panel opens on its verdict line
(the bars a scroll or a drag away), at 1600x1000 whole, and a split the user dragged stays."""
import pytest

pytest.importorskip("pytestqt")

from test_gui_layouts import settle, window  # noqa: E402,F401 - the fixture


def test_short_window_gives_the_form_the_room(qtbot, window):
    page = window.new_run
    settle(qtbot, window, (1000, 700), 0)
    page._gpu_done({"name": "NVIDIA GeForce RTX 3060", "total": 12288 << 20, "free": 11650 << 20})
    page._preset_chosen(3)  # a GPU preset: verdict, bars and legend
    qtbot.waitUntil(lambda: page.vram.result is not None and page.vram.canvas.isVisible(), timeout=5000)
    split, vram = page.split, page.vram
    qtbot.waitUntil(lambda: split.sizes()[1] == split.panel_height(), timeout=3000)
    form, panel = split.sizes()
    assert form >= 440  # it was ~350 with the whole panel under it
    verdict_bottom = vram.verdict.mapTo(split.panel.widget(), vram.verdict.rect().bottomLeft()).y()
    assert verdict_bottom < panel <= vram.canvas.mapTo(split.panel.widget(), vram.canvas.rect().topLeft()).y()
    assert split.panel.verticalScrollBar().maximum() > 0  # the rest is a scroll away

    settle(qtbot, window, (1600, 1000), 0)
    qtbot.waitUntil(lambda: split.sizes()[1] == split.panel_height(), timeout=3000)
    qtbot.waitUntil(lambda: split.panel.verticalScrollBar().maximum() == 0, timeout=3000)  # whole, nothing to scroll
    assert split.sizes()[1] > panel

    split.splitterMoved.emit(200, 1)  # the user drags the handle: their split stays
    split.setSizes([300, sum(split.sizes()) - 300])
    settle(qtbot, window, (1000, 700), 0)
    qtbot.wait(50)
    assert split.sizes()[1] > split.panel_height()
