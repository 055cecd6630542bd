"""The whole flow on the real demo engine: New run (demo) → VRAM bar → Start → charts receive points → Pause →
Resume → Stop → the run shows in Runs as stopped → reopen its charts from events.jsonl.

Runs the real engine (runner + launcher + control socket client)."""
from pathlib import Path

import pytest
from PySide6.QtGui import QIcon

from grpo_studio.gui.main_window import MainWindow
from grpo_studio.gui.settings import AppSettings

pytestmark = pytest.mark.slow


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("GRPO_STUDIO_GPU", "none")
    monkeypatch.delenv("GRPO_STUDIO_CLI", raising=False)
    settings = AppSettings()
    settings.told_about_tray = True  # no modal "training goes on" box at teardown (test_gui_live_run tests it)
    main = MainWindow(settings, QIcon())
    qtbot.addWidget(main)
    main.show()
    yield main
    run_dir = main.monitor.run_dir
    if run_dir is not None and main.monitor._running():  # never leave an engine behind
        from grpo_studio.gui.engine_bridge import send_engine_command
        send_engine_command(run_dir, "stop")
    main.shutdown()


def test_demo_start_pause_resume_stop_reopen(window, qtbot, runs_dir):
    page = window.new_run
    page._preset_chosen(1)  # the demo preset, whatever the form restored
    page.hyper.editors["max_steps"].widget.setValue(400)  # long enough to pause and stop it mid-run
    qtbot.waitUntil(lambda: page.vram.result is not None and page.vram.result["model"]["name"] == "demo",
                    timeout=5000)
    qtbot.waitUntil(page.is_ready, timeout=5000)
    page.start_action()
    monitor = window.monitor
    assert window.stack.currentWidget() is monitor
    run_dir = Path(monitor.run_dir)
    assert run_dir.parent == runs_dir

    qtbot.waitUntil(lambda: len(monitor.data.reward.x) >= 3, timeout=240_000)  # loading torch + the model
    monitor._refresh()
    assert monitor.charts.reward.stack.currentIndex() == 1

    monitor.pause_action()
    qtbot.waitUntil(lambda: monitor.data.paused, timeout=60_000)
    paused_at = monitor.data.step
    qtbot.wait(1500)
    assert monitor.data.step == paused_at  # really paused

    monitor.pause_action()  # resume
    qtbot.waitUntil(lambda: monitor.data.step > paused_at, timeout=60_000)

    monitor.stop_button.click()
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=120_000)
    assert monitor.data.done["reason"] == "stopped"
    steps_seen = len(monitor.data.reward.x)

    window.show_page(2)
    qtbot.waitUntil(lambda: any(Path(r.path) == run_dir and r.state == "stopped" for r in window.runs.model.runs),
                    timeout=20_000)
    row = next(i for i, r in enumerate(window.runs.model.runs) if Path(r.path) == run_dir)
    assert window.runs.model.index(row, 1).data() == "Stopped"
    window.runs.table.selectRow(row)
    assert window.runs.resume_button.isEnabled()
    window.runs.open_button.click()  # reopen: the charts come back from events.jsonl
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=10_000)
    assert len(monitor.data.reward.x) == steps_seen
