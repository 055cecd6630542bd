"""The engine's endpoint, driven against a torch-free fake engine: live + catch-up without gaps, several
clients, authentication, no pickle, malformed input, stop, one engine per run."""
import json
import os
import pickle
import stat
import subprocess
import sys
import time
from multiprocessing import AuthenticationError
from multiprocessing import connection as mpc
from pathlib import Path

import pytest

from grpo_studio.engine.common.client import EngineClient, EngineNotRunning, follow_events, send_command
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths, read_status
from grpo_studio.engine.run.socket_dir import remove_socket_dir

FAKE = Path(__file__).parent / "fake_engine.py"


def start_fake(run_dir, *extra):
    process = subprocess.Popen([sys.executable, str(FAKE), str(run_dir), *extra], stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = read_status(RunPaths(run_dir))
        if status.get("endpoint") and status.get("pid") == process.pid and status.get("state") == "running":
            return process
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode())
        time.sleep(0.05)
    process.kill()
    raise AssertionError("fake engine did not come up")


@pytest.fixture
def engine(tmp_path):
    run_dir = tmp_path / "run"
    process = start_fake(run_dir)
    yield run_dir, process
    if process.poll() is None:
        process.kill()
        process.wait()
        remove_socket_dir(read_status(RunPaths(run_dir)).get("endpoint"))  # a killed engine leaves its folder


def wait_until(condition, timeout=10.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def event_count(run_dir) -> int:
    return len(list(read_events(RunPaths(run_dir).events)))


def logged(run_dir, text: str) -> bool:
    return any(e["type"] == "log" and text in e["message"] for e in read_events(RunPaths(run_dir).events))


def collect(client, count, timeout=20.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        try:
            event = client.recv(timeout=0.5)
        except EOFError:  # the engine ended and closed the connection
            break
        if event is not None and event.get("type") != "reply":
            got.append(event)
    return got


def raw_connection(run_dir, authkey=None):
    status = read_status(RunPaths(run_dir))
    key = authkey if authkey is not None else RunPaths(run_dir).secret.read_bytes().strip()
    return mpc.Client(status["endpoint"], family="AF_UNIX", authkey=key)


def test_late_client_catches_up_from_the_file_then_follows_live_without_gap(engine):
    run_dir, _ = engine
    assert wait_until(lambda: event_count(run_dir) >= 30)  # the file holds events the late client must get first
    with EngineClient(run_dir) as client:
        assert client.subscribe(from_seq=0)["ok"]
        events = collect(client, 150)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(150))
    on_disk = {e["seq"]: e for e in read_events(RunPaths(run_dir).events)}
    assert all(on_disk[e["seq"]] == e for e in events)  # the very same events as the durable record
    assert events[0]["type"] == "hello"


def test_subscribe_from_the_middle_and_two_clients_at_once(engine):
    run_dir, _ = engine
    assert wait_until(lambda: event_count(run_dir) >= 10)  # b's start (seq 5) is in the file already
    with EngineClient(run_dir) as a, EngineClient(run_dir) as b:
        a.subscribe(from_seq=0)
        b.subscribe(from_seq=5)
        got_a, got_b = collect(a, 120), collect(b, 120)
    assert [e["seq"] for e in got_a] == list(range(120))
    assert [e["seq"] for e in got_b] == list(range(5, 125))


def test_secret_is_private_and_a_wrong_key_is_rejected(engine):
    run_dir, process = engine
    mode = stat.S_IMODE(os.stat(RunPaths(run_dir).secret).st_mode)
    assert mode == 0o600
    assert len(RunPaths(run_dir).secret.read_text()) == 64
    with pytest.raises(AuthenticationError):
        raw_connection(run_dir, authkey=b"not the key")
    assert send_command(run_dir, "ping")["ok"]  # the engine still serves others
    assert process.poll() is None


def test_pickled_payload_is_refused_and_the_engine_lives(engine):
    run_dir, process = engine

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {run_dir / 'pwned'}",))

    conn = raw_connection(run_dir)
    conn.send(Boom())  # what a naive server would unpickle
    answer = json.loads(conn.recv_bytes())
    conn.close()
    assert answer["type"] == "reply" and answer["ok"] is False and "JSON" in answer["error"]
    assert not (run_dir / "pwned").exists()
    assert send_command(run_dir, {"cmd": "ping"}) == {"type": "reply", "cmd": "ping", "ok": True, "error": None}
    assert process.poll() is None
    assert wait_until(lambda: logged(run_dir, "malformed"))


def test_malformed_and_unknown_messages_get_error_replies(engine):
    run_dir, process = engine
    conn = raw_connection(run_dir)
    for payload in (b"{not json", b"[1, 2]", b"\xff\xfe", json.dumps({"cmd": "format_disk"}).encode(),
                    json.dumps({"cmd": "subscribe", "from_seq": "x"}).encode()):
        conn.send_bytes(payload)
        answer = json.loads(conn.recv_bytes())
        assert answer["type"] == "reply" and answer["ok"] is False and answer["error"], payload
    conn.send_bytes(b'{"cmd": "ping"}')
    assert json.loads(conn.recv_bytes())["ok"] is True  # the same connection still works
    conn.close()
    assert process.poll() is None
    assert wait_until(lambda: logged(run_dir, "format_disk"))


def test_pause_resume_save_now_and_stop(engine):
    run_dir, process = engine
    assert send_command(run_dir, "pause")["ok"]
    at_reply = event_count(run_dir)
    # Watch for half a second (the fake writes an event every 10 ms when it runs): the step under way when
    # the pause came may still end, nothing after it.
    wait_until(lambda: event_count(run_dir) > at_reply + 1, timeout=0.5)
    count = event_count(run_dir)
    assert count <= at_reply + 1  # really paused
    assert send_command(run_dir, "resume")["ok"]
    assert send_command(run_dir, "save_now")["ok"]
    with EngineClient(run_dir) as client:
        client.subscribe(from_seq=count)
        reply = client.command("stop")  # events arrive in between; they are kept for recv()
        assert reply["cmd"] == "stop" and reply["ok"]
        rest = collect(client, 10_000, timeout=10)
    assert process.wait(timeout=10) == 0
    kinds = [e["type"] for e in rest]
    assert "checkpoint" in kinds and kinds[-1] == "done" and rest[-1]["reason"] == "stopped"
    assert [e["seq"] for e in rest] == list(range(count, count + len(rest)))
    endpoint = Path(read_status(RunPaths(run_dir))["endpoint"])
    assert not endpoint.exists() and not endpoint.parent.exists()  # the socket and its private folder go
    with pytest.raises(EngineNotRunning):
        send_command(run_dir, "ping")


def test_follow_events_ends_at_done_and_reads_the_file_when_the_engine_is_gone(tmp_path):
    run_dir = tmp_path / "run"
    process = start_fake(run_dir, "--steps", "40", "--interval", "0.01")
    live = list(follow_events(run_dir))
    assert process.wait(timeout=10) == 0
    assert [e["seq"] for e in live] == list(range(len(live))) and live[-1]["type"] == "done"
    replayed = list(follow_events(run_dir))  # no engine now: the file
    assert replayed == live


def test_a_second_engine_on_the_same_run_is_refused(engine):
    run_dir, process = engine
    second = subprocess.run([sys.executable, str(FAKE), str(run_dir)], capture_output=True, text=True, timeout=30)
    assert second.returncode == 7  # EXIT_CODES["busy"]
    assert f"already being trained by process {process.pid}" in second.stderr
    assert send_command(run_dir, "ping")["ok"]  # the first one is untouched


def test_long_run_folder_path_still_gets_a_private_socket_file(tmp_path):
    if sys.platform == "win32":
        pytest.skip("named pipes on Windows")
    run_dir = tmp_path / ("x" * 90) / "run"
    process = start_fake(run_dir, "--steps", "20")
    try:
        endpoint = read_status(RunPaths(run_dir))["endpoint"]
        assert not endpoint.startswith("\0")  # never the abstract namespace (no permissions there)
        assert stat.S_ISSOCK(os.stat(endpoint).st_mode)
        assert stat.S_IMODE(os.stat(Path(endpoint).parent).st_mode) == 0o700
        events = list(follow_events(run_dir))
        assert events[-1]["type"] == "done"
    finally:
        process.kill()
        process.wait()
        remove_socket_dir(endpoint)
