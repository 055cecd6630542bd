"""Issue 27 finding 8: the client's connect and key handshake have a timeout with a clear message (an engine
stopped by SIGSTOP never hangs `pause`, `stop` or `attach`), and a full engine says it is full."""
import os
import socket
import sys
import threading
import time

import pytest

from grpo_studio.engine.run import server as server_module
from grpo_studio.engine.cli import main
from grpo_studio.engine.common.client import EngineBusy, EngineClient, send_command
from grpo_studio.engine.common.events import EventLog
from grpo_studio.engine.common.runs import RunPaths, write_status
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.run.server import EngineServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


def in_thread(call):
    """Run call() in a thread; returns what it raised or returned, or 'hung' when it never came back."""
    box = []

    def body():
        try:
            box.append(call())
        except BaseException as error:  # noqa: BLE001 - handed to the test
            box.append(error)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(60)
    return box[0] if box else "hung"


@pytest.fixture
def silent_engine(runs_dir, tmp_path):
    """A run whose engine accepts connections but never answers: what a SIGSTOPped engine looks like."""
    paths = RunPaths(runs_dir / "stopped")
    paths.root.mkdir(parents=True)
    paths.config.write_text("model: demo\n")
    paths.secret.write_text("ab" * 32)
    address = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(1)  # never accept()ed, never answered
    write_status(paths, pid=os.getpid(), state="running", started=time.time() - 1, endpoint=address)
    yield paths
    listener.close()


def test_commands_to_a_silent_engine_time_out_with_a_clear_message(silent_engine, capsys):
    result = in_thread(lambda: send_command(silent_engine.root, "pause", timeout=0.5))
    assert isinstance(result, TimeoutError) and "did not answer within 0.5 s" in str(result)
    assert in_thread(lambda: main(["stop", str(silent_engine.root)])) != "hung"
    err = capsys.readouterr().err
    assert "could not reach the engine of stopped: the engine of stopped did not" in err and "stopped or hung" in err


def test_a_full_engine_says_so(runs_dir, monkeypatch, capsys):
    monkeypatch.setattr(server_module, "MAX_CLIENTS", 1)
    paths = RunPaths(runs_dir / "live")
    paths.root.mkdir(parents=True)
    write_status(paths, pid=os.getpid(), state="running", started=time.time() - 1)
    events = EventLog(paths.events)
    server = EngineServer(paths, events, Control()).start()
    first = EngineClient(paths.root).connect()
    try:
        assert first.command("ping")["ok"]
        with pytest.raises(EngineBusy, match="serves 1 clients at once"):
            send_command(paths.root, "pause")
        assert main(["pause", str(paths.root)]) != 0
        assert "serves 1 clients at once" in capsys.readouterr().err
    finally:
        first.close()
        server.close()
        events.close()
