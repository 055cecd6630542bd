"""Issue 27 finding 5: one damaged run file never breaks the others. Every reader of run files (the store behind
`runs`, the GUI's Runs page and tray, attach, resume, the engine's own status writes) treats malformed content
as "this run is damaged: <what>" and goes on."""
import json

import pytest

from grpo_studio.engine.cli import main
from grpo_studio.engine.common.events import EventLog, read_events
from grpo_studio.engine.common.runs import RunPaths, list_runs, summarize_run, write_status
from test_runs_store import dead_pid, make_run

DAMAGED_STATUS = {"s-list": b"[]", "s-null": b"null", "s-string": b'"x"', "s-bytes": b"\xff\xfe\x00",
                  "s-started": None}
DAMAGED_EVENTS = {"e-nul": b"\x00\x00\x00\n", "e-number": b"123\n", "e-huge": b"9" * 5000 + b"\n",
                  "e-seq": b'{"seq": "one", "type": "metrics"}\n'}


@pytest.fixture
def damaged_runs(runs_dir):
    make_run(runs_dir, "good", state="finished", pid=dead_pid(), done="finished")
    for name, content in DAMAGED_STATUS.items():
        root = make_run(runs_dir, name, state="finished", pid=dead_pid(), done="finished")
        if content is None:
            status = json.loads(RunPaths(root).status.read_text())
            (root / "status.json").write_text(json.dumps({**status, "started": "yesterday"}))
        else:
            (root / "status.json").write_bytes(content)
    for name, line in DAMAGED_EVENTS.items():
        root = make_run(runs_dir, name, state="finished", pid=dead_pid(), done="finished")
        with open(RunPaths(root).events, "ab") as handle:
            handle.write(line)
    return runs_dir


def test_the_store_lists_every_run_and_says_what_is_damaged(damaged_runs):
    summaries = {s.name: s for s in list_runs(damaged_runs)}
    assert set(summaries) == {"good", *DAMAGED_STATUS, *DAMAGED_EVENTS}
    assert summaries["good"].state == "finished" and summaries["good"].damage is None
    for name in [*DAMAGED_STATUS, *DAMAGED_EVENTS]:
        summary = summaries[name]
        assert summary.state == "damaged" and summary.error.startswith("this run is damaged: "), name
    assert "not UTF-8" in summaries["s-bytes"].damage and "an array" in summaries["s-list"].damage
    assert "started" in summaries["s-started"].damage
    assert summaries["e-huge"].damage == "events.jsonl line 6 is not an event"
    assert summaries["e-huge"].best_reward == 0.5  # the good lines still count


def test_runs_and_attach_go_on_past_damaged_runs(damaged_runs, capsys):
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "s-list: this run is damaged: status.json holds an array instead of an object" in out
    assert main(["runs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"]: row["state"] for row in rows}["e-nul"] == "damaged"
    for name in ("s-bytes", "e-huge"):
        assert main(["attach", name]) == 1  # no traceback: a clear last line
        assert f"run {name} is damaged" in capsys.readouterr().out


def test_event_readers_skip_damaged_lines_and_status_writes_repair(damaged_runs):
    events = list(read_events(RunPaths(damaged_runs / "e-seq").events))
    assert all(isinstance(e["seq"], int) for e in events) and events[-1]["type"] == "done"
    paths = RunPaths(damaged_runs / "s-list")
    assert write_status(paths, state="stopped", step=3)["state"] == "stopped"  # the engine can write over it
    assert summarize_run(paths.root).damage is None
    log = EventLog(RunPaths(damaged_runs / "e-huge").events)  # a resumed engine appends after the bad line
    log.emit("hello", version="t")
    log.close()


def test_gui_runs_page_and_tray_show_damaged_runs(damaged_runs, qtbot):
    from grpo_studio.gui.active_runs import ActiveRuns
    from grpo_studio.gui.app import resume_interrupted_runs
    from grpo_studio.gui.runs_page import RunsPage

    page = RunsPage()
    qtbot.addWidget(page)
    page.set_runs_dir(damaged_runs)
    texts = {page.model.run_at(row).name: page.model._text(page.model.run_at(row), 1)
             for row in range(page.model.rowCount())}
    assert texts["good"] == "Finished" and texts["s-null"] == "Damaged" and texts["e-number"] == "Damaged"
    page.select(damaged_runs / "s-null")
    assert page.damage_note.isVisibleTo(page)
    assert "s-null: this run is damaged: status.json holds null" in page.damage_note.text()
    assert page.resume_button.isEnabled()  # from its newest checkpoint that reads back
    page.select(damaged_runs / "good")
    assert not page.damage_note.isVisibleTo(page)
    assert resume_interrupted_runs(damaged_runs) == []  # the app starts; damaged runs are not auto-resumed
    watcher = ActiveRuns(lambda: damaged_runs)  # the tray's watcher reads the same store
    watcher.poll()
    assert watcher.active == []
