"""The held-out evaluation in the GUI, fed by a real run with eval on: the Monitor's "Held-out accuracy"
chart beside the training reward and its before -> after card; the Runs page's held-out column; and a run
without evaluation saying how to turn it on."""
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402

from grpo_studio.engine.common.events import read_events  # noqa: E402
from grpo_studio.engine.common.runs import RunPaths  # noqa: E402
from grpo_studio.engine.run.runner import run_engine  # noqa: E402
from grpo_studio.gui.runs_page import RunsPage  # noqa: E402
from test_evaluation import eval_config  # noqa: E402
from test_gui_monitor import make_run, monitor  # noqa: E402,F401 - the fixture


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    run = root / "2026-01-01_100000_eval"
    config = eval_config(root, steps=4, every=2, num_prompts=8)
    config.eval.greedy = False  # sampled: the accuracy moves between evaluations
    assert run_engine(config, run, quiet=True) == 0
    return run


def test_monitor_charts_held_out_accuracy_beside_the_reward(monitor, qtbot, evaluated_run):
    evals = [e for e in read_events(RunPaths(evaluated_run).events) if e["type"] == "eval"]
    monitor.open_run(evaluated_run)
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    chart = monitor.charts.held_out
    assert chart.title == "Held-out accuracy" and chart.stack.currentIndex() == 1
    assert list(chart._curves["accuracy"].xData) == [0, 2, 4] == [e["step"] for e in evals]
    assert list(chart._curves["accuracy"].yData) == [e["accuracy"] for e in evals]
    assert list(chart._curves["mean reward"].yData) == pytest.approx([e["reward"] for e in evals])
    assert monitor.stat_held_out.value.text() == f"{evals[0]['accuracy']:.2f} → {evals[-1]['accuracy']:.2f}"
    assert any("held-out accuracy" in line.text and "(base model)" in line.text for line in monitor.data.log)
    monitor.resize(1600, 1000)
    monitor.show()
    qtbot.waitExposed(monitor)
    assert monitor.stat_held_out.isVisible()
    reward = monitor.charts.reward
    # beside the training reward: the same row, to its right
    assert chart.geometry().top() == reward.geometry().top() and chart.geometry().left() > reward.geometry().right()


def test_monitor_without_eval_says_how_to_turn_it_on(monitor, qtbot, tmp_path):
    monitor.open_run(make_run(tmp_path, "demo_events.jsonl"))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    chart = monitor.charts.held_out
    assert chart.stack.currentIndex() == 0 and "eval: {path:" in chart.placeholder.text()
    assert monitor.stat_held_out.isHidden()  # no card for a run that does not evaluate


def test_runs_page_shows_held_out_accuracy_before_and_after(qtbot, evaluated_run):
    evals = [e for e in read_events(RunPaths(evaluated_run).events) if e["type"] == "eval"]
    page = RunsPage()
    qtbot.addWidget(page)
    page.set_runs_dir(evaluated_run.parent)
    model = page.model
    column = model.COLUMNS.index("Held-out")
    assert not page.table.isColumnHidden(column)
    row = next(i for i, r in enumerate(model.runs) if Path(r.path) == evaluated_run)
    text = model.data(model.index(row, column))
    assert text == f"{evals[0]['accuracy']:.2f} → {evals[-1]['accuracy']:.2f}"
    assert "base model" in model.data(model.index(row, column), role=Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(row, model.COLUMNS.index("Duration"))) not in ("", None)


def test_runs_page_hides_the_held_out_column_when_no_run_evaluates(qtbot, tmp_path):
    make_run(tmp_path, "demo_events.jsonl")
    page = RunsPage()
    qtbot.addWidget(page)
    page.set_runs_dir(tmp_path)
    assert page.model.runs and page.table.isColumnHidden(page.model.COLUMNS.index("Held-out"))
