"""The G completions side by side: the engine's size-capped `group` event, and the Monitor's Samples tab
showing one step's group best to worst, browsable in a finished run and while a run is live."""
from pathlib import Path

import pytest
import torch

pytest.importorskip("pytestqt")

from grpo_studio.engine.common.events import read_events  # noqa: E402
from grpo_studio.engine.train.sample_group import MAX_CHARS, MAX_COMPLETIONS, group_fields  # noqa: E402
from grpo_studio.gui.group_view import EMPTY  # noqa: E402
from test_gui_monitor import make_run, monitor  # noqa: E402,F401 - the fixture

DATA = Path(__file__).parent / "data"


def test_group_fields_sort_and_cap():
    G = 20
    totals = [float(i % 7) for i in range(2 * G)]
    totals[G + 3] = None  # no reward applied: last
    texts = [f"completion {i}" for i in range(2 * G)]
    texts[G + 5] = "x" * (MAX_CHARS + 10)
    fields = group_fields(1, G, "1+1=", texts, {"f": totals}, totals, torch.arange(2 * G, dtype=torch.float32),
                          list(range(2 * G)), [i % 2 == 0 for i in range(2 * G)])
    rows = fields["completions"]
    assert fields["group_size"] == G and len(rows) == MAX_COMPLETIONS
    assert rows[-1]["reward"] is None and rows[-1]["advantage"] == G + 3.0  # advantages stay with their rows
    kept = [r["reward"] for r in rows[:-1]]
    assert kept == sorted(kept, reverse=True)
    group = sorted((t for t in totals[G:] if t is not None), reverse=True)
    assert kept[:MAX_COMPLETIONS // 2] == group[:MAX_COMPLETIONS // 2]  # the best half ...
    assert kept[MAX_COMPLETIONS // 2:] == group[-(MAX_COMPLETIONS // 2 - 1):]  # ... and the worst
    capped = next(r["completion"] for r in rows if r["completion"].startswith("xxx"))
    assert len(capped) < MAX_CHARS + 40 and capped.endswith("[…10 more characters]")
    assert all(r["truncated"] == (r["length"] % 2 == 0) for r in rows)


def group_events(name):
    return [e for e in read_events(DATA / name) if e["type"] == "group"]


def refreshed(monitor):
    monitor._dirty = True
    monitor._refresh()
    return monitor.group_view


def test_finished_run_shows_the_newest_group_best_to_worst(monitor, qtbot, tmp_path):
    monitor.open_run(make_run(tmp_path, "runaway_events.jsonl"))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    view = refreshed(monitor)
    groups = group_events("runaway_events.jsonl")
    assert monitor.samples_stack.currentWidget() is view
    assert view.steps.count() == len(groups) and view.steps.currentText() == f"Step {groups[-1]['step']}"
    table, newest = view.table, groups[-1]["completions"]
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["#", "Completion", "Reward", "long", "Advantage", "Length", "Cut off"]
    assert table.rowCount() == len(newest) == 8
    assert [table.item(r, 2).text() for r in range(8)] == [f"{c['reward']:.3f}" for c in newest]
    assert [table.item(r, 4).text() for r in range(8)] == [f"{c['advantage']:.3f}" for c in newest]
    assert [table.item(r, 6).text() for r in range(8)] == ["cut" if c["truncated"] else "" for c in newest]
    assert f"Prompt: {groups[-1]['prompt']}" in view.caption.text() and "all 8 completions" in view.caption.text()
    table.setCurrentCell(0, 0)
    assert f"advantage {newest[0]['advantage']:.3f}" in view.detail.toPlainText()

    view.previous.click()  # browse back: it stays there
    assert view.steps.currentText() == f"Step {groups[-2]['step']}" and not view.follow.isChecked()
    assert table.item(0, 5).text() == str(groups[-2]["completions"][0]["length"])
    view.steps.setCurrentIndex(0)
    view.steps.activated.emit(0)
    assert view.steps.currentText() == f"Step {groups[0]['step']}" and not view.previous.isEnabled()


def test_live_run_keeps_the_chosen_step_and_follows_on_request(monitor, qtbot, tmp_path):
    events = list(read_events(DATA / "hacking_events.jsonl"))
    cut = next(i for i, e in enumerate(events) if e["type"] == "group" and e["step"] == 20)
    run = make_run(tmp_path, "hacking_events.jsonl")
    (run / "events.jsonl").write_text("")
    monitor.open_run(run)
    view = refreshed(monitor)
    assert view.caption.text() == EMPTY and view.table.rowCount() == 0
    monitor.events_event_response(events[:cut + 1])
    view = refreshed(monitor)
    assert view.steps.currentText() == "Step 20" and view.follow.isChecked()
    view.previous.click()
    assert view.steps.currentText() == "Step 15"
    monitor.events_event_response(events[cut + 1:])  # the run goes on
    refreshed(monitor)
    assert view.steps.count() == 8 and view.steps.currentText() == "Step 15"  # the user's choice stays
    view.follow.setChecked(True)
    assert view.steps.currentText() == "Step 40" and not view.next.isEnabled()


def test_runs_without_groups_keep_one_sample_a_step(monitor, qtbot, tmp_path):
    monitor.open_run(make_run(tmp_path, "demo_events.jsonl"))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    refreshed(monitor)
    assert monitor.samples_stack.currentWidget() is monitor.samples and monitor.samples.table.rowCount() > 0
