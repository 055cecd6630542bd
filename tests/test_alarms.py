"""Alarms for reward hacking and collapse on recorded engine runs of the demo model with gameable rewards
(tests/data/record_alarm_events.py re-records them): each said once in the terminal, shown on the Monitor's
Learning-signal card, sent once as a tray notice, and none on a run that learns."""
import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from grpo_studio.engine.common.alarms import ALARM_KEYS, BASELINE, RECENT, Alarms
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.signal_hints import HintWatcher
from grpo_studio.engine.train.diagnostics import repeated_ngrams
from grpo_studio.engine.run.progress import ProgressPrinter

DATA = Path(__file__).parent / "data"


def recorded(name):
    return list(read_events(DATA / name))


def said(name):
    """(step, key, text) of every hint and alarm a watcher says over the recorded run, in order."""
    watcher = HintWatcher()
    return [(e["step"], h.key, h.text) for e in recorded(name) if e["type"] in ("metrics", "eval")
            for h in watcher.update(e)]


def alarms(name):
    return {key: (step, text) for step, key, text in said(name) if key in ALARM_KEYS}


def mean(values):
    return sum(values) / len(values)


def test_repeated_ngram_share():
    assert repeated_ngrams([[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]]) == pytest.approx(5 / 9)  # 9 4-grams, 4 distinct
    assert repeated_ngrams([[1, 2, 3, 4, 5, 6], [7, 7]]) == 0.0  # fluent, and too short to repeat
    assert repeated_ngrams([[5] * 10, [1, 2, 3, 4, 5]]) == pytest.approx((1 - 1 / 7) / 2)
    assert repeated_ngrams([]) is None


def test_a_run_whose_completions_run_away():
    found = alarms("runaway_events.jsonl")
    assert set(found) == {"length_runaway", "repetition", "kl_runaway", "entropy_collapse"}
    metrics = [e for e in recorded("runaway_events.jsonl") if e["type"] == "metrics"]
    step, text = found["length_runaway"]
    base = mean([m["completion_length"]["mean"] for m in metrics[:BASELINE]])
    now = mean([m["completion_length"]["mean"] for m in metrics[step - RECENT:step]])
    assert now >= 2 * base
    assert text.startswith(f"Completion length is running away (from {base:.0f} to {now:.0f} tokens")
    assert "reward `length`" in text and "grpo.max_completion_length" in text
    step, text = found["repetition"]
    share = mean([m["signal"]["repeated_ngrams"] for m in metrics[step - RECENT:step]])
    assert f"{share:.0%} of their 4-token n-grams repeat" in text and "grpo.repetition_penalty" in text
    step, text = found["kl_runaway"]
    kl = mean([m["kl"] for m in metrics[step - RECENT:step]])
    assert f"→ {kl:.3f} nats per token" in text and "grpo.beta" in text
    assert "grpo.temperature" in found["entropy_collapse"][1]


def test_a_run_that_collapses():
    found = alarms("collapse_events.jsonl")
    assert set(found) == {"length_collapse", "entropy_collapse"}
    assert found["length_collapse"][1].startswith("Completion length is collapsing (from 4 to 2 tokens")
    assert "optim.learning_rate" in found["length_collapse"][1]
    metrics = [e for e in recorded("collapse_events.jsonl") if e["type"] == "metrics"]
    step, text = found["entropy_collapse"]
    base = mean([m["signal"]["entropy"] for m in metrics[:BASELINE]])
    assert text.startswith(f"Token entropy has collapsed from {base:.3f}")


def test_training_reward_up_while_held_out_accuracy_falls():
    events = recorded("hacking_events.jsonl")
    evals = [e for e in events if e["type"] == "eval"]
    step, text = alarms("hacking_events.jsonl")["reward_hacking"]
    assert step in {e["step"] for e in evals}  # said when an evaluation shows it, not on a training step
    assert "while held-out accuracy fell" in text and "keep a checkpoint from near step" in text
    # the first evaluations are not enough to tell a trend from noise
    assert Alarms().see_all(e for e in events if e["type"] != "eval" or e["step"] <= evals[2]["step"]).hints() == []
    # without held-out evaluation, nothing to compare with
    assert "reward_hacking" not in {h.key for h in Alarms().see_all(e for e in events if e["type"] != "eval").hints()}


def test_no_alarm_on_a_run_that_learns():
    assert alarms("healthy_events.jsonl") == {}
    assert Alarms().see_all(recorded("healthy_events.jsonl")).hints() == []
    assert Alarms().see_all(recorded("truncated_events.jsonl")).hints() == []  # too short to compare


def test_terminal_says_each_alarm_once():
    out = io.StringIO()
    printer = ProgressPrinter(file=out)
    for event in recorded("runaway_events.jsonl"):
        printer.handle(event)
    printer.close()
    lines = [line for line in out.getvalue().splitlines() if line.startswith("alarm: ")]
    assert len(lines) == 4 and any("grpo.repetition_penalty" in line for line in lines)
    assert [line for line in out.getvalue().splitlines() if line.startswith("hint: ")]  # plain hints stay hints


def test_monitor_card_shows_the_alarms(qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from test_gui_monitor import make_run
    from grpo_studio.gui.engine_bridge import EngineBridge
    from grpo_studio.gui.monitor_page import MonitorPage

    bridge = EngineBridge()
    monitor = MonitorPage(bridge)
    qtbot.addWidget(monitor)
    try:
        monitor.open_run(make_run(tmp_path / "collapse", "collapse_events.jsonl"))
        qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
        monitor._dirty = True
        monitor._refresh()
        advice = monitor.signal_card.advice.text()
        assert advice.count("⚠ Alarm:") == 2 and "Completion length is collapsing" in advice
        assert advice.index("⚠ Alarm:") < advice.index("•")  # alarms first, then the plain hints
        monitor.open_run(make_run(tmp_path / "healthy", "healthy_events.jsonl"))
        qtbot.waitUntil(lambda: monitor.data.done is not None, timeout=5000)
        monitor._dirty = True
        monitor._refresh()
        assert "Alarm" not in monitor.signal_card.advice.text()  # opening another run starts the fold afresh
        assert "repeated 4-grams" in monitor.signal_card.caption.text()
    finally:
        monitor.close_run()
        bridge.shutdown()


def test_tray_notice_once_per_alarm(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("pytestqt")
    from grpo_studio.engine.common import runs as run_store
    from grpo_studio.gui.active_runs import ActiveRuns

    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "events.jsonl").write_text("")
    monkeypatch.setattr(run_store, "list_runs", raising=False, value=lambda runs_dir=None: [
        SimpleNamespace(name="r1", path=folder, state="running", step=1, total_steps=40, reward=None)])
    watcher = ActiveRuns(lambda: tmp_path)
    notices = []
    watcher.notice_event.connect(lambda *args: notices.append(args))
    watcher.poll()
    lines = (DATA / "hacking_events.jsonl").read_text().splitlines(keepends=True)
    for start in range(0, len(lines), 50):  # the run writes on while the GUI polls
        with open(folder / "events.jsonl", "a") as handle:
            handle.writelines(lines[start:start + 50])
        watcher.poll()
    alarm_notices = [n for n in notices if n[0] == "alarm"]
    assert len(alarm_notices) == 1
    kind, title, text = alarm_notices[0]
    assert title == "Training alarm · r1" and text.startswith("Training reward rose")
    assert not any(n[0] == "alarm" and "identical rewards" in n[2] for n in notices)  # plain hints stay off the tray


def test_recorded_alarm_files_are_engine_runs():
    for name in ("runaway_events.jsonl", "collapse_events.jsonl", "hacking_events.jsonl", "healthy_events.jsonl"):
        events = recorded(name)
        assert events[0]["type"] == "hello" and events[-1]["type"] == "done"
        assert [e["seq"] for e in events] == list(range(len(events)))
        assert all("repeated_ngrams" in e["signal"] for e in events if e["type"] == "metrics")


def test_tray_alarm_of_a_run_started_before_the_app(qtbot, tmp_path, monkeypatch):
    """The app starts mid-run: the alarms' baseline is still the run's own start, read back from its file."""
    pytest.importorskip("pytestqt")
    from grpo_studio.engine.common import runs as run_store
    from grpo_studio.gui.active_runs import ActiveRuns

    lines = (DATA / "hacking_events.jsonl").read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if '"type":"eval"' in line and '"step":16,' in line) + 1
    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "events.jsonl").write_text("".join(lines[:cut]))  # four evaluations on record already
    monkeypatch.setattr(run_store, "list_runs", raising=False, value=lambda runs_dir=None: [
        SimpleNamespace(name="r1", path=folder, state="running", step=16, total_steps=40, reward=None)])
    watcher = ActiveRuns(lambda: tmp_path)
    notices = []
    watcher.notice_event.connect(lambda *args: notices.append(args))
    watcher.poll()
    with open(folder / "events.jsonl", "a") as handle:
        handle.writelines(lines[cut:])
    watcher.poll()
    alarm_notices = [n for n in notices if n[0] == "alarm"]
    assert len(alarm_notices) == 1 and "up to step 12" in alarm_notices[0][2]  # compared with the run's start
