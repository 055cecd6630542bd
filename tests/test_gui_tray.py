"""Tray menu actions call the right engine commands (tested on the menu itself, tray or not); tooltip text;
notifications; the single-instance handshake; the run watcher's notices."""
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtGui import QIcon  # noqa: E402

from grpo_studio.gui.engine_bridge import EngineBridge  # noqa: E402
from grpo_studio.gui.settings import AppSettings  # noqa: E402
from grpo_studio.gui.single_instance import InstanceServer, ask_running_instance  # noqa: E402
from grpo_studio.gui.tray import Tray  # noqa: E402


def run(name: str, state: str = "running", step: int = 12, reward: float | None = 0.61):
    return SimpleNamespace(name=name, path=Path("/runs") / name, state=state, step=step, total_steps=200,
                           reward=reward, best_reward=reward)


@pytest.fixture
def tray(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    bridge = EngineBridge()
    sent = []
    monkeypatch.setattr(bridge, "send", lambda run_dir, cmd: sent.append((str(run_dir), cmd)))
    item = Tray(bridge, AppSettings(), QIcon())
    item.sent = sent
    yield item
    item.hide()


def test_menu_actions_send_commands(tray):
    tray.update_runs([run("alpha"), run("beta", state="paused")])
    alpha = tray.actions_for("/runs/alpha")
    alpha["Pause"].trigger()
    alpha["Stop (saves a checkpoint)"].trigger()
    alpha["Save checkpoint now"].trigger()
    beta = tray.actions_for("/runs/beta")
    assert "Pause" not in beta
    beta["Resume"].trigger()
    assert tray.sent == [("/runs/alpha", "pause"), ("/runs/alpha", "stop"), ("/runs/alpha", "save_now"),
                         ("/runs/beta", "resume")]


def test_show_open_and_quit_only_forward(tray, qtbot):
    tray.update_runs([run("alpha")])
    menu = tray.rebuild_menu()
    texts = [a.text() for a in menu.actions()]
    assert texts[0] == "Show GRPO Studio"
    assert "Quit GRPO Studio (runs keep going)" in texts
    with qtbot.waitSignal(tray.show_window_action, timeout=1000):
        menu.actions()[0].trigger()
    with qtbot.waitSignal(tray.open_run_action, timeout=1000) as opened:
        tray.actions_for("/runs/alpha")["Open in Monitor"].trigger()
    assert opened.args == ["/runs/alpha"]
    with qtbot.waitSignal(tray.quit_action, timeout=1000):
        next(a for a in menu.actions() if a.text().startswith("Quit")).trigger()
    assert tray.sent == []  # quitting the GUI never stops a run


def test_tooltip_lists_active_runs(tray):
    assert "no runs active" in tray.tooltip
    tray.update_runs([run("alpha", step=50, reward=0.734)])
    assert "alpha: step 50/200 (25 %), reward 0.73" in tray.tooltip


def test_notifications_respect_the_setting(tray):
    tray.settings.notifications = False
    assert tray.notify("finished", "Run finished", "done") is False


def test_second_launch_asks_the_first_to_show(qtbot, tmp_path):
    name = f"grpo-studio-test-{os.getpid()}-{time.time_ns()}"
    assert ask_running_instance(name, timeout_ms=200) is False
    server = InstanceServer(name)
    assert server.listen()
    with qtbot.waitSignal(server.show_event, timeout=3000):
        assert ask_running_instance(name) is True
    server.close()


def test_active_runs_notices(qtbot, tmp_path, monkeypatch):
    """New checkpoint / done lines of an active run become notices; old lines do not."""
    from grpo_studio.engine.common import runs as run_store
    from grpo_studio.gui.active_runs import ActiveRuns

    folder = tmp_path / "r1"
    folder.mkdir()
    (folder / "events.jsonl").write_text(json.dumps({"type": "checkpoint", "seq": 0, "time": 1, "step": 5,
                                                     "path": "x"}) + "\n")
    state = {"value": "running"}
    monkeypatch.setattr(run_store, "list_runs", raising=False, value=lambda runs_dir=None: [
        SimpleNamespace(name="r1", path=folder, state=state["value"], step=1, total_steps=10, reward=None)])
    watcher = ActiveRuns(lambda: tmp_path)
    notices = []
    watcher.notice_event.connect(lambda *args: notices.append(args))
    watcher.poll()
    assert notices == [] and len(watcher.active) == 1
    with open(folder / "events.jsonl", "a") as handle:
        handle.write(json.dumps({"type": "checkpoint", "seq": 1, "time": 2, "step": 10, "path": "y"}) + "\n")
        handle.write(json.dumps({"type": "done", "seq": 2, "time": 3, "reason": "finished", "adapter": "a"}) + "\n")
    state["value"] = "finished"
    watcher.poll()
    assert [n[0] for n in notices] == ["checkpoint", "finished"]
    assert watcher.active == []
