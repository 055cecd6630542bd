"""The Monitor's progress card keeps room for its longest values: a tokens/s figure that grows from "–" to
"12,913" between two layout passes is never painted cut off ("12,91")."""
import json
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from test_gui_monitor import monitor  # noqa: E402,F401 - the fixture

DATA = Path(__file__).parent / "data"


def test_tokens_per_second_is_not_clipped(monitor, qtbot, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    events = [json.loads(line) for line in (DATA / "demo_events.jsonl").read_text().splitlines()]
    for event in events:
        if event["type"] == "progress":
            event["tokens_per_s"], event["eta_s"] = 12913.4, 3 * 3600 + 25 * 60
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    monitor.resize(1600, 1000)
    monitor.show()
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monkeypatch.setattr(monitor, "_running", lambda: True)  # a live run: speed and time left are shown
    monitor._dirty = True
    monitor._refresh()  # measured before Qt lays the card out again: the room must already be there
    for stat, text in ((monitor.stat_speed, "12,913"), (monitor.stat_eta, "3 h 25 min")):
        assert stat.value.text() == text
        assert stat.value.width() >= stat.value.fontMetrics().horizontalAdvance(text), text


def test_a_finished_run_with_held_out_accuracy_fits_a_small_window(monitor, qtbot, tmp_path):
    """A finished run's card drops time left and tokens/s (nothing to say) so that, in a 1000-pixel window, the
    held-out "0.31 → 0.86" and each caption are painted whole."""
    run = tmp_path / "run"
    run.mkdir()
    events = [json.loads(line) for line in (DATA / "demo_events.jsonl").read_text().splitlines()]
    done = next(i for i, e in enumerate(events) if e["type"] == "done")
    events[done:done] = [{"type": "eval", "seq": 0, "time": events[done]["time"], "step": step, "reward": accuracy,
                          "accuracy": accuracy, "accuracy_reward": "math_correct", "rewards": {}, "num_prompts": 64}
                         for step, accuracy in ((0, 0.31), (events[done - 1]["step"], 0.86))]
    for seq, event in enumerate(events):
        event["seq"] = seq
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    monitor.resize(810, 600)  # the Monitor's share of a 1000 x 700 window
    monitor.show()
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._dirty = True
    monitor._refresh()
    qtbot.waitUntil(lambda: monitor.stat_held_out.value.text() == "0.31 → 0.86", timeout=5000)
    assert monitor.stat_eta.isHidden() and monitor.stat_speed.isHidden()
    for stat in (monitor.stat_reward, monitor.stat_best, monitor.stat_held_out):
        for shown in stat.findChildren(type(stat.value)):  # the value and the caption
            needed = shown.fontMetrics().horizontalAdvance(shown.text())
            qtbot.waitUntil(lambda: shown.width() >= needed, timeout=3000)
