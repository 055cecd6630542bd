"""Runs page over a temp runs folder of fake run folders: states, resume offered for a crashed run, open,
delete with confirmation — and the main window opening a finished run's charts from its events.jsonl."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from grpo_studio.engine.common.config import save_config  # noqa: E402
from grpo_studio.engine.common.demo import demo_config  # noqa: E402
from grpo_studio.gui.runs_page import RunsPage  # noqa: E402

DATA = Path(__file__).parent / "data"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fake_run(runs_dir: Path, name: str, state: str, pid: int | None, events: str | None, started: float) -> Path:
    run = runs_dir / name
    run.mkdir(parents=True)
    save_config(demo_config(), run / "config.yaml")
    (run / "status.json").write_text(json.dumps({"pid": pid, "state": state, "started": started, "step": 30,
                                                 "total_steps": 60}))
    if events:
        shutil.copy(DATA / events, run / "events.jsonl")
    return run


@pytest.fixture
def runs(runs_dir):
    now = time.time()
    return {
        "finished": fake_run(runs_dir, "2026-01-01_100000_demo", "finished", None, "demo_events.jsonl", now - 300),
        "crashed": fake_run(runs_dir, "2026-01-01_110000_demo", "running", dead_pid(), None, now - 200),
        "stopped": fake_run(runs_dir, "2026-01-01_120000_demo", "stopped", None, None, now - 100),
    }


@pytest.fixture
def page(qtbot, runs_dir, runs):
    widget = RunsPage()
    qtbot.addWidget(widget)
    widget.set_runs_dir(runs_dir)
    return widget


def row_of(page: RunsPage, path: Path) -> int:
    return next(i for i, r in enumerate(page.model.runs) if Path(r.path) == path)


def test_lists_runs_with_state_and_offers_resume(page, runs):
    assert page.model.rowCount() == 3 and page.stack.currentIndex() == 1
    states = {Path(r.path): r.state for r in page.model.runs}
    assert states[runs["finished"]] == "finished"
    assert states[runs["crashed"]] == "crashed"
    assert states[runs["stopped"]] == "stopped"
    page.table.selectRow(row_of(page, runs["crashed"]))
    assert page.resume_button.isEnabled()
    assert page.model.index(row_of(page, runs["crashed"]), 1).data() == "Crashed"
    page.table.selectRow(row_of(page, runs["finished"]))
    assert not page.resume_button.isEnabled()
    assert page.model.index(row_of(page, runs["finished"]), 0).data() == runs["finished"].name


def test_resume_and_open_emit_the_run_folder(page, runs, qtbot):
    page.table.selectRow(row_of(page, runs["crashed"]))
    with qtbot.waitSignal(page.resume_run_action, timeout=1000) as resumed:
        page.resume_button.click()
    assert resumed.args == [str(runs["crashed"])]
    with qtbot.waitSignal(page.open_run_action, timeout=1000) as opened:
        page.open_button.click()
    assert opened.args == [str(runs["crashed"])]


def test_delete_asks_first(page, runs, monkeypatch):
    page.table.selectRow(row_of(page, runs["stopped"]))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    page.delete_button.click()
    assert runs["stopped"].exists()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    page.delete_button.click()
    assert not runs["stopped"].exists()
    assert page.model.rowCount() == 2


def test_empty_runs_folder_shows_the_empty_state(qtbot, tmp_path):
    widget = RunsPage()
    qtbot.addWidget(widget)
    widget.set_runs_dir(tmp_path / "nothing-here")
    assert widget.stack.currentIndex() == 0


def test_main_window_opens_a_finished_run_from_its_record(qtbot, runs, runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    from PySide6.QtGui import QIcon

    from grpo_studio.gui.main_window import MainWindow
    from grpo_studio.gui.settings import AppSettings

    window = MainWindow(AppSettings(), QIcon())
    qtbot.addWidget(window)
    window.show_page(2)
    window.runs.table.selectRow(row_of(window.runs, runs["finished"]))
    window.runs.open_button.click()
    assert window.stack.currentWidget() is window.monitor
    qtbot.waitUntil(lambda: window.monitor.data.done is not None, timeout=5000)
    metrics = (DATA / "demo_events.jsonl").read_text().count('"type":"metrics"')
    assert len(window.monitor.data.reward.x) == metrics > 0
    window.shutdown()
