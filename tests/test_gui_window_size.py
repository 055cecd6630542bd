"""The first window fits the screen's available area (a 1366x768 laptop: Start on screen), takes 1280x860
where there is room, and the user's size comes back at the next start, shrunk onto a smaller screen."""
from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QRect  # noqa: E402
from PySide6.QtGui import QIcon  # noqa: E402


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("GRPO_STUDIO_GPU", "")
    from grpo_studio.gui.main_window import MainWindow
    from grpo_studio.gui.settings import AppSettings

    windows = []

    def make(available: QRect):
        monkeypatch.setattr(MainWindow, "screen", lambda self: SimpleNamespace(availableGeometry=lambda: available))
        window = MainWindow(AppSettings(), QIcon())
        qtbot.addWidget(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()


def test_a_laptop_screen_holds_the_whole_first_window(make_window):
    laptop = QRect(0, 32, 1366, 736)  # 1366x768 less a top panel
    window = make_window(laptop)
    assert window.width() <= 1366 and window.height() <= 736
    assert window.height() == 736 and laptop.contains(window.frameGeometry())
    big = make_window(QRect(0, 0, 2560, 1400))
    assert (big.width(), big.height()) == (1280, 860)
    assert QRect(0, 0, 2560, 1400).center().x() - big.frameGeometry().center().x() in (-1, 0, 1)


def test_the_users_size_comes_back_and_shrinks_onto_a_smaller_screen(make_window):
    desk = QRect(0, 0, 2560, 1400)
    window = make_window(desk)
    window.resize(1500, 1100)
    window.close()  # saves the geometry (no runs active: the window really closes)
    again = make_window(desk)
    assert (again.width(), again.height()) == (1500, 1100)
    again.close()
    laptop = QRect(0, 0, 1366, 768)
    small = make_window(laptop)
    assert small.width() <= 1366 and small.height() <= 768 and laptop.contains(small.frameGeometry())
