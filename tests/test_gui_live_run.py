"""What a live run looks like in the app (offscreen; the real window is test_gui_real_window.py): reopening
shows the live run, a long run replays to its real step, closing says once that training goes on, pause shows
"paused" and serves Save now at once, and the Monitor's numbers, log and tables read right."""
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QLocale  # noqa: E402
from PySide6.QtGui import QIcon  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from test_gui_monitor import RECORDED, make_run, monitor  # noqa: E402,F401 - the fixture
from test_server import start_fake  # noqa: E402

from grpo_studio.engine.common.events import EventLog  # noqa: E402
from grpo_studio.engine.common.runs import RunPaths, write_status  # noqa: E402
from grpo_studio.gui.main_window import MainWindow  # noqa: E402
from grpo_studio.gui.monitor_page import fmt_rate  # noqa: E402
from grpo_studio.gui.settings import AppSettings  # noqa: E402


@pytest.fixture
def app_env(tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("GRPO_STUDIO_GPU", "none")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # the model picker scans an empty cache
    return runs_dir


@pytest.fixture
def told(monkeypatch):
    """What the app told the user in message boxes (a modal box would block an offscreen test forever)."""
    texts = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: texts.append(text))
    return texts


@pytest.fixture
def window(qtbot, app_env, told):
    made = []

    def make() -> MainWindow:
        main = MainWindow(AppSettings(), QIcon())
        qtbot.addWidget(main)
        made.append(main)
        return main

    yield make
    for main in made:
        main.shutdown()


@pytest.fixture
def fake_engine(app_env):
    processes = []

    def start(name: str, *extra: str) -> Path:
        run_dir = app_env / name
        processes.append(start_fake(run_dir, *extra))
        (run_dir / "config.yaml").write_text("model: demo\ndataset: {path: demo}\n")
        return run_dir

    yield start
    for process in processes:
        process.kill()
        process.wait()


def long_run(root: Path, steps: int) -> Path:
    """A run folder with `steps` steps of metrics, progress and a checkpoint every 50, written by EventLog."""
    paths = RunPaths(root)
    root.mkdir(parents=True)
    log = EventLog(paths.events)
    log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=1000)
    for step in range(1, steps + 1):
        log.step = step
        log.emit("phase", phase="generating", step=step)
        log.emit("progress", step=step, total_steps=1000, eta_s=100.0, tokens_per_s=1387.4)
        log.emit("metrics", step=step, reward=step / steps, reward_std=0.1, rewards={}, loss=0.01, kl=None,
                 clip_ratio=0.0, completion_length={"mean": 5, "max": 6}, lr=1e-5, grad_norm=0.1)
        if step % 50 == 0:
            log.emit("checkpoint", step=step, path=str(paths.checkpoints / f"step-{step}"))
    log.close()
    return root


def test_reopening_shows_the_live_run(window, fake_engine, app_env, qtbot):
    long_run(app_env / "older-finished", 3)
    write_status(RunPaths(app_env / "older-finished"), state="finished", started=time.time() - 60)
    run_dir = fake_engine("live", "--interval", "0.05")
    main = window()
    main.show()
    main.show_page(0)
    main.start_background()
    qtbot.waitUntil(lambda: main.monitor.run_dir == run_dir, timeout=10_000)
    assert main.stack.currentWidget() is main.monitor  # a run trains: the Monitor is what to show
    qtbot.waitUntil(lambda: main.monitor.data.step > 0, timeout=10_000)
    main.monitor._refresh()
    assert main.monitor.stack.currentIndex() == 1 and main.monitor._running()
    assert main.monitor.progress_text.text().startswith(f"Step {main.monitor.data.step}")


def test_reopening_without_a_live_run_loads_the_most_recent_one(window, app_env, qtbot):
    long_run(app_env / "a-old", 3)
    write_status(RunPaths(app_env / "a-old"), state="finished", started=time.time() - 600)
    long_run(app_env / "b-new", 5)
    write_status(RunPaths(app_env / "b-new"), state="stopped", started=time.time() - 60)
    main = window()
    main.show()
    main.show_page(2)
    main.start_background()
    qtbot.waitUntil(lambda: main.monitor.run_dir == app_env / "b-new", timeout=10_000)
    assert main.stack.currentIndex() == 2  # loaded for when the user looks, not pushed in front of Runs
    qtbot.waitUntil(lambda: main.monitor.data.step == 5, timeout=10_000)


def test_opening_a_run_at_step_850_replays_it_all(monitor, qtbot, tmp_path):
    run = long_run(tmp_path / "long", 850)
    write_status(RunPaths(run), pid=os.getpid(), state="running", started=time.time())  # "live" (this process)
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.step == 850, timeout=10_000)
    monitor._refresh()
    assert monitor.progress_text.text().startswith("Step 850 of 1000")
    assert monitor.stat_speed.value.text() == "1,387"  # English digits grouping, no "1.387" or "13,87"
    assert len(monitor.data.reward.x) == 850 and monitor.charts.reward.stack.currentIndex() == 1


def test_a_batch_from_the_run_shown_before_never_lands_in_the_next_one(monitor, qtbot, tmp_path):
    first = long_run(tmp_path / "first", 300)
    monitor.open_run(first)
    qtbot.waitUntil(lambda: monitor.data.done is None and monitor.data.step == 300, timeout=10_000)
    old_follower = monitor.follower
    second = make_run(tmp_path / "second-root", "demo_events.jsonl")
    monitor.open_run(second)
    late = [{"type": "progress", "seq": 10_000, "time": 1.0, "step": 299, "total_steps": 1000}]
    old_follower.events_event.emit(late)  # a batch of the first run, still queued when the second opened
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=10_000)
    assert monitor.data.step == max(e.get("step", 0) for e in RECORDED) and monitor.data.last_seq == \
        RECORDED[-1]["seq"]


def test_closing_with_a_live_run_says_once_where_training_goes_on(window, fake_engine, qtbot, told):
    fake_engine("live-close", "--interval", "0.05")
    main = window()
    main.tray.icon = None  # no system tray (a bare X server, GNOME without the extension)
    main.show()
    main.active.poll()
    assert main.active.active
    main.close()
    assert len(told) == 1 and "keeps training" in told[0] and "grpo-studio runs" in told[0]
    again = window()
    again.tray.icon = None
    again.active.poll()
    again.close()
    assert len(told) == 1  # once, not at every close


def test_pause_shows_paused_and_save_now_saves_at_once(monitor, fake_engine, qtbot):
    run_dir = fake_engine("pausing", "--interval", "0.05")
    said = []
    monitor.status_event.connect(said.append)
    monitor.open_run(run_dir)
    qtbot.waitUntil(lambda: monitor.data.step > 2, timeout=10_000)
    monitor.data.eta_s = 120.0  # the fake engine sends no ETA; a real one counts down
    monitor.pause_action()
    qtbot.waitUntil(lambda: monitor.data.paused, timeout=10_000)
    paused_at = monitor.data.step
    monitor._dirty = True
    monitor._refresh()
    assert monitor.stat_eta.value.text() == "paused" and monitor.pause_button.text() == "Resume"
    assert "paused" in monitor.progress_text.text()
    qtbot.waitUntil(lambda: any(s.startswith(f"Paused at step {paused_at}") for s in said), timeout=5000)
    monitor.save_button.click()
    assert said[-1] == "Saving a checkpoint now…"
    qtbot.waitUntil(lambda: bool(monitor.data.checkpoints), timeout=10_000)
    assert monitor.data.checkpoints[-1]["step"] == paused_at and monitor.data.paused
    qtbot.waitUntil(lambda: said[-1] == f"Checkpoint saved at step {paused_at}", timeout=5000)
    assert not any("will pause" in s for s in said)
    monitor.pause_action()  # resume
    qtbot.waitUntil(lambda: monitor.data.step > paused_at, timeout=10_000)
    monitor._dirty = True
    monitor._refresh()
    assert monitor.stat_eta.value.text() != "paused"


def test_main_window_leaves_the_monitors_own_commands_to_the_monitor(window, tmp_path):
    main = window()
    run = long_run(tmp_path / "r", 2)
    main.monitor.open_run(run)
    main.statusBar().clearMessage()
    main._command_done(str(run), "pause", {"ok": True})
    assert main.statusBar().currentMessage() == ""  # no "will pause after this step" racing the real state
    main._command_done(str(tmp_path / "other"), "pause", {"ok": True})  # from the tray, for another run
    assert main.statusBar().currentMessage() == "other will pause after this step"


def test_tokens_per_second_in_the_uis_english_whatever_the_system_locale():
    QLocale.setDefault(QLocale(QLocale.Language.German, QLocale.Country.Germany))
    try:
        assert fmt_rate(13.87) == "13.9"
        assert fmt_rate(13870.4) == "13,870"
        assert fmt_rate(None) == "–"
    finally:
        QLocale.setDefault(QLocale.c())


def test_log_tab_logs_the_runs_phases_steps_and_checkpoints(monitor, qtbot, tmp_path):
    monitor.open_run(make_run(tmp_path, "demo_events.jsonl"))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    lines = monitor.log_view.toPlainText().splitlines()
    steps = [e for e in RECORDED if e["type"] == "metrics"]
    checkpoints = [e for e in RECORDED if e["type"] == "checkpoint"]
    assert any("started on cpu" in line for line in lines)
    assert any(line.endswith("loading model") for line in lines)
    assert sum(" step " in f" {line}" and "· reward" in line for line in lines) == len(steps)
    assert sum("checkpoint saved at step" in line for line in lines) == len(checkpoints)
    assert "finished at step" in lines[-1] and len(lines) > len(steps) + len(checkpoints)
    assert all(line[:8].count(":") == 2 for line in lines)  # each line has its time


def test_sample_table_headers_are_not_clipped(monitor, qtbot, tmp_path):
    monitor.resize(1000, 700)
    monitor.show()
    monitor.open_run(make_run(tmp_path, "demo_events.jsonl"))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    monitor.tabs.setCurrentIndex(1)
    table = monitor.samples.table
    header = table.horizontalHeader()
    metrics = header.fontMetrics()
    for column in range(table.columnCount()):
        text = table.horizontalHeaderItem(column).text()
        assert header.sectionSize(column) >= metrics.horizontalAdvance(text), text
    assert "answer_format" in [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
