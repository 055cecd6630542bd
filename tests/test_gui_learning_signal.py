"""The learning signal in words: hint texts from recorded engine runs (tests/data/record_signal_events.py
re-records them) in the Monitor's card, the terminal's once-only hints, the end-of-run summary and the
reward-plateau watch behind the tray's notification."""
import io
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from grpo_studio.engine.common.events import read_events  # noqa: E402
from grpo_studio.engine.run.progress import ProgressPrinter  # noqa: E402
from grpo_studio.engine.run.summary import run_summary  # noqa: E402
from grpo_studio.engine.common.signal_hints import WINDOW, HintWatcher, PlateauWatch, signal_hints  # noqa: E402
from grpo_studio.gui.learning_signal import NO_SIGNAL, WAITING  # noqa: E402
from grpo_studio.gui.settings import AppSettings  # noqa: E402
from test_gui_monitor import make_run, monitor  # noqa: E402,F401 - the fixture

DATA = Path(__file__).parent / "data"


def recorded(name):
    return list(read_events(DATA / name))


def metrics(events):
    return [e for e in events if e["type"] == "metrics"]


def mean_share(events, key):
    recent = metrics(events)[-WINDOW:]
    return sum(m["signal"][key] for m in recent) / len(recent)


def test_truncation_hint_from_a_recorded_run():
    events = recorded("truncated_events.jsonl")
    share = mean_share(events, "truncated")
    hints = {h.key: h.text for h in signal_hints(metrics(events))}
    assert set(hints) == {"truncated"}  # the rewards still differ within groups: nothing else to say
    assert hints["truncated"].startswith(f"{share:.0%} of completions were cut at 3 tokens before they ended")
    assert "max_completion_length" in hints["truncated"]


def test_flat_groups_hint_holds_early_and_goes_once_the_model_learns():
    events = metrics(recorded("flat_groups_events.jsonl"))
    early = events[:3]
    share = sum(m["signal"]["zero_spread_groups"] for m in early) / 3
    hint = next(h for h in signal_hints(early) if h.key == "flat_groups")
    assert hint.text.startswith(f"{share:.0%} of groups got identical rewards (mostly failed alike: the task "
                                "looks too hard for this model)")
    assert "dynamic sampling replaces them" in hint.text  # the run had it on: say what it costs instead
    assert "flat_groups" not in {h.key for h in signal_hints(events)}  # its last ten steps have spread


def test_reward_function_hints_on_a_hand_made_window():
    base = {"step": 1, "reward": 0.0, "completion_length": {"max": 9}}
    window = [dict(base, step=i, signal={"zero_spread_groups": 0.1, "truncated": 0.0, "entropy": 0.8,
                                         "rewards": {"f.py:never": {"none": 0.0, "failed": 0.0, "zero": 1.0},
                                                     "maybe": {"none": 0.95, "failed": 0.1, "zero": 0.0}}})
              for i in range(1, 5)]
    texts = {h.key: h.text for h in signal_hints(window)}
    assert texts["reward_zero:f.py:never"].startswith("'never' gave 0 to every completion in the last 4 steps")
    assert texts["reward_none:maybe"].startswith("'maybe' did not apply to 95% of completions")
    assert texts["reward_failed:maybe"].startswith("'maybe' failed on 10% of completions")
    assert signal_hints(window[:2]) == []  # too few steps to say anything


def test_monitor_card_says_it_on_the_recorded_runs(monitor, qtbot, tmp_path):
    run = make_run(tmp_path / "cut", "truncated_events.jsonl")
    monitor.open_run(run)
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    card = monitor.signal_card
    assert "cut at 3 tokens" in card.advice.text() and card.caption.text().startswith("Last step: ")
    last = metrics(recorded("truncated_events.jsonl"))[-1]["signal"]
    assert f"cut off {last['truncated']:.0%}" in card.caption.text()

    # a run still early on: only its first three steps are on record
    lines = (DATA / "flat_groups_events.jsonl").read_text().splitlines(keepends=True)
    third = next(i for i, line in enumerate(lines) if json.loads(line).get("type") == "metrics"
                 and json.loads(line)["step"] == 3)
    early = tmp_path / "early" / "run"
    early.mkdir(parents=True)
    (early / "events.jsonl").write_text("".join(lines[:third + 1]))
    monitor.open_run(early)
    qtbot.waitUntil(lambda: len(monitor.signal_card.metrics) == 3, timeout=5000)
    monitor._dirty = True
    monitor._refresh()
    assert "identical rewards" in card.advice.text() and "cut" not in card.advice.text()
    assert "resampled rounds" in card.caption.text()


def test_monitor_card_on_a_run_without_signal(monitor, qtbot, tmp_path):
    monitor.open_run(make_run(tmp_path, "demo_events.jsonl"))
    qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
    monitor._refresh()
    assert monitor.signal_card.caption.text() == NO_SIGNAL and monitor.signal_card.advice.text() == ""
    monitor.signal_card.clear()
    assert monitor.signal_card.caption.text() == WAITING


def test_terminal_says_each_hint_once():
    out = io.StringIO()
    printer = ProgressPrinter(file=out)
    for event in recorded("truncated_events.jsonl"):
        printer.handle(event)
    printer.close()
    hints = [line for line in out.getvalue().splitlines() if line.startswith("hint: ")]
    assert len(hints) == 1 and "were cut at 3 tokens" in hints[0]
    watcher = HintWatcher()
    said = [h.key for e in metrics(recorded("flat_groups_events.jsonl")) for h in watcher.update(e)]
    assert said == ["flat_groups"]


def test_summary_at_the_end_of_a_terminal_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(DATA / "truncated_events.jsonl", run / "events.jsonl")
    events = recorded("truncated_events.jsonl")
    rewards = [m["reward"] for m in metrics(events)]
    text = run_summary(run)
    lines = text.splitlines()
    seconds = events[-1]["time"] - events[0]["time"]
    assert lines[0] == f"summary: {len(rewards)} steps in 0:{round(seconds):02d}"
    assert lines[1] == f"  mean reward: {rewards[0]:.3f} over steps 1-1 -> {rewards[-1]:.3f} over steps 12-12"
    assert lines[2].startswith("  adapter: ") and lines[2].endswith("adapter")
    prompt = next(e["prompt"] for e in events if e["type"] == "sample")
    assert lines[3] == f"  try it: grpo-studio chat {run} --prompt {prompt}"


def test_plateau_watch_notifies_once_per_stall():
    watch = PlateauWatch(patience=5, smoothing=2)
    rewards = [0.1, 0.2, 0.3, 0.4] + [0.4] * 10 + [0.9, 0.9] + [0.9] * 10
    said = [(step, text) for step, r in enumerate(rewards, 1)
            if (text := watch.update({"step": step, "reward": r}))]
    # smoothed over 2 steps the best is reached at step 5 (then again at 16): 5 steps later, once each
    assert [step for step, _ in said] == [10, 21]
    assert said[0][1].startswith("The mean reward has not improved for 5 steps (best 0.400")
    assert PlateauWatch(patience=0).update({"step": 1, "reward": 1.0}) is None


def test_plateau_steps_is_a_setting(tmp_path):
    from PySide6.QtCore import QSettings

    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert settings.plateau_steps == 50
    settings.plateau_steps = 0
    assert AppSettings(settings.store).plateau_steps == 0
