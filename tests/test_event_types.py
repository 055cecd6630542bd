"""The typed events (engine/common/event_types.py): every emitter uses only its type's fields, the engine
refuses one it lacks, old runs' events.jsonl still parse unchanged, and the one tail of events.jsonl
(events.EventTail) reads a growing file's events each once."""
import ast
import json
import os
import threading
import time
from pathlib import Path

import pytest

import grpo_studio.engine
from grpo_studio.engine.common import runs as run_store
from grpo_studio.engine.common.event_types import EVENT_TYPES, fields_of, typed_event
from grpo_studio.engine.common.events import EventLog, EventTail, read_events
from grpo_studio.engine.common.protocol import EVENT_FIELDS
from grpo_studio.engine.common.runs import RunPaths, write_status
from grpo_studio.gui.run_data import RunData

DATA = Path(__file__).parent / "data"
ENGINE = Path(grpo_studio.engine.__file__).parent


def emit_calls(root: Path) -> list[tuple[str, str, list[str]]]:
    """(where, type, keyword names) of every `...emit("type", name=...)` call in the product code."""
    calls = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name != "emit" or not node.args or not isinstance(node.args[0], ast.Constant) \
                    or not isinstance(node.args[0].value, str):
                continue
            keywords = [k.arg for k in node.keywords if k.arg is not None]  # **spreads are checked at run time
            calls.append((f"{path.relative_to(root)}:{node.lineno}", node.args[0].value, keywords))
    return calls


def test_every_emitter_uses_only_fields_its_event_type_declares():
    calls = emit_calls(ENGINE)
    assert len(calls) >= 40 and {kind for _, kind, _ in calls} >= set(EVENT_TYPES) - {"eval"}  # found them
    wrong = [(where, kind, name) for where, kind, names in calls
             for name in ([kind] if kind not in EVENT_TYPES else [n for n in names if n not in fields_of(kind)])]
    assert wrong == []


def test_the_emitter_check_sees_a_misspelt_field(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('events.emit("metrics", step=1, rewardz=0.5)\nemit("phase", phase="saving")\n')
    calls = emit_calls(tmp_path)
    assert sorted(kind for _, kind, _ in calls) == ["metrics", "phase"]
    assert [n for _, kind, names in calls for n in names if n not in fields_of(kind)] == ["rewardz"]


def test_the_engine_refuses_an_event_field_its_type_lacks(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    with pytest.raises(TypeError, match="rewardz"):
        log.emit("metrics", step=1, rewardz=0.5)
    with pytest.raises(TypeError, match="no event type 'metric'"):
        log.emit("metric", step=1)
    log.emit("log", level="info", message="fine")
    assert [e["type"] for e in read_events(log.path)] == ["log"] and log.next_seq == 1  # nothing half-written


def test_event_fields_are_read_off_the_types():
    assert set(EVENT_FIELDS) == set(EVENT_TYPES)
    assert EVENT_FIELDS["metrics"][:3] == ("step", "reward", "reward_std") and "signal" not in EVENT_FIELDS["metrics"]
    assert EVENT_FIELDS["done"] == ("reason", "adapter") and "signal" in fields_of("metrics")


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*_events.jsonl")))
def test_recorded_runs_parse_unchanged(name):
    """Files written by earlier versions: every field fits its type, so reading drops nothing."""
    lines = (DATA / name).read_bytes().splitlines()
    assert list(read_events(DATA / name)) == [json.loads(line) for line in lines]


def test_an_older_runs_events_still_load(tmp_path):
    """Today's format without what later versions added (signal, offloaded_peak, eval, gpu_peak_reserved)."""
    paths = RunPaths(tmp_path / "old")
    paths.root.mkdir()
    old = [{"type": "hello", "seq": 0, "time": 100.0, "version": "0.1", "device": "cpu", "gpu_name": None,
            "gpu_total": None, "config_hash": "x", "total_steps": 2},
           {"type": "metrics", "seq": 1, "time": 101.0, "step": 1, "reward": 0.25, "reward_std": 0.1,
            "rewards": {"math_correct": 0.25}, "loss": 0.5, "kl": None, "clip_ratio": 0.0,
            "completion_length": {"mean": 3.0, "max": 5}, "lr": 1e-5, "grad_norm": 0.3},
           {"type": "memory", "seq": 2, "time": 101.5, "step": 1, "gpu_allocated": None, "gpu_reserved": None,
            "gpu_peak": None, "rss": 1000, "offloaded": 0},
           {"type": "metrics", "seq": 3, "time": 102.0, "step": 2, "reward": 0.75, "reward_std": 0.1,
            "rewards": {"math_correct": 0.75}, "loss": 0.4, "kl": None, "clip_ratio": 0.0,
            "completion_length": {"mean": 4.0, "max": 6}, "lr": 1e-5, "grad_norm": 0.2},
           {"type": "done", "seq": 4, "time": 103.0, "step": 2, "reason": "finished", "adapter": "adapter"}]
    paths.events.write_text("".join(json.dumps(e) + "\n" for e in old))
    assert list(read_events(paths.events)) == old
    data = RunData()
    data.apply(old)
    assert data.reward.y == [0.25, 0.75] and data.rewards["math_correct"].y == [0.25, 0.75]
    assert data.done["reason"] == "finished" and data.rss.y == [1000.0]
    run = run_store.summarize_run(paths.root)
    assert (run.state, run.step, run.reward, run.best_reward, run.damage) == ("finished", 2, 0.75, 0.75, None)


def test_a_field_that_does_not_fit_its_type_is_dropped_once_for_every_reader(tmp_path):
    event = {"type": "metrics", "seq": 0, "time": 1.0, "step": 1, "reward": "high", "loss": True, "kl": 0.5,
             "rewards": [], "future_field": {"x": 1}}
    assert typed_event(event) == {"type": "metrics", "seq": 0, "time": 1.0, "step": 1, "kl": 0.5,
                                  "future_field": {"x": 1}}
    unknown = {"type": "from_a_newer_engine", "seq": 1, "reward": "x"}
    assert typed_event(unknown) is unknown
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event) + "\n")
    data = RunData()
    data.apply(list(read_events(path)))
    assert data.reward.y == [] and data.loss.y == [] and data.kl.y == [0.5] and data.step == 1


def test_the_tail_reads_each_whole_line_once_as_the_file_grows(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert list(tail.new_events()) == []  # no file yet
    path.write_bytes(b'{"type": "log", "seq": 0}\n{"type": "log", "se')
    assert [e["seq"] for e in tail.new_events()] == [0]
    with open(path, "ab") as handle:
        handle.write(b'q": 1}\nnot json\n{"type": "log", "seq": 2}\n')
    assert [e["seq"] for e in tail.new_events()] == [1, 2]
    assert list(tail.new_events()) == [] and (tail.lines, tail.first_damaged) == (4, 3)
    assert not tail.shrunk()
    path.write_bytes(b'{"type": "log", "seq": 0}\n')  # rewritten shorter
    assert tail.shrunk()


def test_the_follower_yields_each_event_once_while_the_file_grows_and_the_run_resumes(tmp_path, qtbot):
    """RunFollower's promise, which the Monitor's fold relies on: a finished segment already on disk, then a
    resumed segment written while the follower reads the file (no engine socket: the file tail)."""
    from grpo_studio.gui.engine_bridge import RunFollower

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    log = EventLog(paths.events)
    log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=40)
    for step in range(1, 11):
        log.emit("progress", step=step, total_steps=40, eta_s=None, tokens_per_s=None)
    log.emit("done", reason="stopped", adapter=None)
    write_status(paths, pid=os.getpid(), state="running", started=time.time())

    def resumed_segment() -> None:
        log.emit("hello", version="t", device="cpu", gpu_name=None, gpu_total=None, config_hash="x", total_steps=40)
        for step in range(11, 41):
            log.emit("progress", step=step, total_steps=40, eta_s=None, tokens_per_s=None)
            time.sleep(0.01)
        log.emit("done", reason="finished", adapter="adapter")
        write_status(paths, state="finished")

    follower = RunFollower(paths.root, expect_start=True)
    batches = []
    follower.events_event.connect(batches.append)
    writer = threading.Thread(target=resumed_segment)
    with qtbot.waitSignal(follower.ended_event, timeout=30_000):
        follower.start()
        writer.start()
    writer.join()
    follower.wait(5000)
    got = [e for batch in batches for e in batch]
    assert [e["seq"] for e in got] == list(range(log.next_seq)) and len(batches) >= 2
    data = RunData()
    data.apply(got)
    assert data.step == 40 and data.done["reason"] == "finished"


def test_the_terminal_printer_has_a_line_for_each_event_type_it_reads():
    """ProgressPrinter reads each event type in its own typed handler: a recorded run plus an error."""
    import io

    from grpo_studio.engine.run.progress import ProgressPrinter

    events = list(read_events(DATA / "healthy_events.jsonl"))
    events.insert(-1, {"type": "error", "seq": 10**6, "time": 1.0, "kind": "data", "message": "bad row",
                       "hint": "fix it"})
    out = io.StringIO()
    printer = ProgressPrinter(file=out, mininterval=0)
    for event in events:
        printer.handle(event)
    printer.close()
    text = out.getvalue()
    for line in ("grpo-studio ", "loading model and data...", "checkpoint: step ", "held-out (step 4): accuracy 0.20",
                 "[info] ", "error (data): bad row", "hint: fix it", "done: finished"):
        assert line in text, line
    assert f"reward {[e for e in events if e['type'] == 'metrics'][-1]['reward']:.3f}" in text  # metrics, progress
