"""Monitor fed a recorded events.jsonl: charts, progress, samples, log, the error panel; and the event fold."""
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QLabel  # noqa: E402

from grpo_studio.engine.common.demo import demo_config  # noqa: E402
from grpo_studio.engine.common.config import save_config  # noqa: E402
from grpo_studio.engine.common.events import read_events  # noqa: E402
from grpo_studio.gui.engine_bridge import EngineBridge  # noqa: E402
from grpo_studio.gui.monitor_page import MonitorPage  # noqa: E402
from grpo_studio.gui.run_data import RunData  # noqa: E402

DATA = Path(__file__).parent / "data"
RECORDED = list(read_events(DATA / "demo_events.jsonl"))  # a real `grpo-studio train --demo` run
METRICS = [e for e in RECORDED if e["type"] == "metrics"]


def make_run(root: Path, events: str, config: bool = True) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    shutil.copy(DATA / events, run / "events.jsonl")
    if config:
        save_config(demo_config(), run / "config.yaml")
    return run


@pytest.fixture
def monitor(qtbot):
    bridge = EngineBridge()
    page = MonitorPage(bridge)
    qtbot.addWidget(page)
    yield page
    page.close_run()
    bridge.shutdown()


def test_run_data_folds_the_recorded_demo():
    data = RunData()
    data.apply(RECORDED)
    assert data.reward.x == [float(e["step"]) for e in METRICS] and len(METRICS) >= 20
    assert set(data.rewards) == set(METRICS[-1]["rewards"])
    assert len(data.kl.y) == sum(e["kl"] is not None for e in METRICS)  # nulls leave gaps, not fake zeros
    assert data.best_reward == max(e["reward"] for e in METRICS)
    assert len(data.samples) == sum(e["type"] == "sample" for e in RECORDED) > 0
    assert len(data.checkpoints) == sum(e["type"] == "checkpoint" for e in RECORDED) > 0
    assert data.done["reason"] == "finished"


def test_null_metrics_leave_gaps():
    data = RunData()
    data.apply([{"type": "metrics", "seq": 0, "time": 1, "step": 1, "reward": 0.5, "reward_std": 0.1,
                 "rewards": {}, "loss": 0.1, "kl": None, "clip_ratio": None,
                 "completion_length": {"mean": 3, "max": 4}, "lr": 1e-5, "grad_norm": None}])
    assert data.kl.y == [] and data.clip_ratio.y == [] and data.reward.y == [0.5]


def test_pause_state_follows_the_engines_phases_not_log_text():
    data = RunData()
    data.apply([{"type": "log", "seq": 0, "time": 1, "level": "info", "message": "paused after step 3"}])
    assert not data.paused  # words in a log line are for people
    data.apply([{"type": "phase", "seq": 1, "time": 2, "phase": "paused", "step": 3}])
    assert data.paused
    data.apply([{"type": "phase", "seq": 2, "time": 3, "phase": "saving", "step": 3},  # save_now while paused
                {"type": "checkpoint", "seq": 3, "time": 3, "step": 3, "path": "c"},
                {"type": "phase", "seq": 4, "time": 3, "phase": "paused", "step": 3}])
    assert data.paused
    data.apply([{"type": "phase", "seq": 5, "time": 4, "phase": "generating", "step": 4}])
    assert not data.paused


def test_monitor_replays_a_finished_run(monitor, qtbot, tmp_path):
    run = make_run(tmp_path, "demo_events.jsonl")
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    charts = monitor.charts
    steps = [e["step"] for e in METRICS]
    assert charts.reward.stack.currentIndex() == 1  # the plot, not the placeholder
    assert list(charts.reward._curves["total"].xData) == steps
    average = "average of 10 steps"
    assert {"total", average, *(n.rsplit(":", 1)[-1] for n in METRICS[-1]["rewards"])} == set(charts.reward._curves)
    # the card shows the mean of the last 10 steps, which is where the chart's average line ends
    last_ten = sum(e["reward"] for e in METRICS[-10:]) / 10
    assert charts.reward._curves[average].yData[-1] == pytest.approx(last_ten)
    assert monitor.stat_reward.value.text() == f"{last_ten:.3f}"
    assert "last 10 steps" in monitor.stat_reward.findChildren(QLabel)[-1].text()
    monitor.resize(1200, 900)
    monitor.show()
    qtbot.waitExposed(monitor)
    legend = charts.reward.legend  # above the plot, never over the data
    assert "total" in legend.text() and average in legend.text()
    assert legend.isVisible() and legend.geometry().bottom() < charts.reward.plot.geometry().top()
    assert len(charts.loss._curves["loss"].xData) == len(steps)
    assert charts.gpu.stack.currentIndex() == 0 and "CPU" in charts.gpu.placeholder.text()
    # the demo trains with beta 0: no reference pass, so KL says so instead of drawing a fake flat zero
    assert all(e["kl"] is None for e in METRICS)
    assert charts.kl.stack.currentIndex() == 0 and "beta is 0" in charts.kl.placeholder.text()
    assert len(charts.ram._curves["process RSS"].yData) == sum(e["type"] == "memory" for e in RECORDED)
    samples = [e for e in RECORDED if e["type"] == "sample"]
    table = monitor.samples.table
    assert table.rowCount() == len(samples)
    assert table.item(0, 0).text() == str(samples[-1]["step"])  # newest first
    table.setCurrentCell(0, 1)
    assert samples[-1]["completion"] in monitor.samples.detail.toPlainText()
    assert "Finished" in monitor.progress_text.text()
    assert monitor.progress.value() == steps[-1]
    assert not monitor.stop_button.isEnabled()  # nothing to stop
    first_log = next(e["message"] for e in RECORDED if e["type"] == "log")
    assert first_log in monitor.log_view.toPlainText()
    assert monitor.error_panel.isHidden()


def test_monitor_shows_an_engine_error_as_a_panel(monitor, qtbot, tmp_path):
    run = make_run(tmp_path, "oom_events.jsonl", config=False)
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    assert monitor.error_panel.isVisibleTo(monitor)
    assert monitor.error_panel.title.text() == "Out of GPU memory"
    assert "micro_batch_size" in monitor.error_panel.hint.text()
    assert "Traceback" not in monitor.error_panel.message.text()
    assert "Failed" in monitor.progress_text.text()


def test_monitor_follows_a_growing_file(monitor, qtbot, tmp_path):
    """An engine writing events while the Monitor is open: new points arrive without reopening."""
    run = tmp_path / "live"
    run.mkdir()
    lines = (DATA / "demo_events.jsonl").read_text().splitlines(keepends=True)
    (run / "events.jsonl").write_text("".join(lines[:60]))
    import os
    import time
    (run / "status.json").write_text(json.dumps({"pid": os.getpid(), "state": "running", "started": time.time()}))
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.last_seq == RECORDED[59]["seq"], timeout=5000)
    points = len(monitor.data.reward.x)
    with open(run / "events.jsonl", "a") as handle:
        handle.write("".join(lines[60:]))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    assert len(monitor.data.reward.x) == len(METRICS) > points


def test_commands_go_to_the_bridge(monitor, qtbot, tmp_path, monkeypatch):
    run = tmp_path / "live"
    run.mkdir()
    import os
    (run / "status.json").write_text(json.dumps({"pid": os.getpid(), "state": "running"}))
    sent = []
    monkeypatch.setattr(monitor.bridge, "send", lambda run_dir, cmd: sent.append((str(run_dir), cmd)))
    monitor.open_run(run)
    monitor._refresh()
    assert monitor.stop_button.isEnabled()
    monitor.pause_button.click()
    monitor.save_button.click()
    monitor.stop_button.click()
    assert [c for _, c in sent] == ["pause", "save_now", "stop"]
    monitor._command_event_response(str(run), "pause", {"ok": True})
    monitor._refresh()
    assert monitor.pause_button.text() == "Pausing…"  # accepted; the engine finishes its step first
    assert not monitor.data.paused
    monitor.events_event_response([{"type": "phase", "seq": 0, "time": 1.0, "phase": "paused", "step": 3}])
    monitor._refresh()
    assert monitor.data.paused and monitor.pause_button.text() == "Resume"
    monitor.pause_button.click()
    assert sent[-1][1] == "resume"
    monitor._command_event_response(str(run), "resume", {"ok": True})
    monitor._refresh()
    assert not monitor.data.paused and monitor.pause_button.text() == "Pause"
