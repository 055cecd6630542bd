"""The engine's socket against other local users and floods of connections (issue 16, cases 13-15).

The server runs in-process here (with a real EventLog and Control) so the limits can be made small; the
second local user is `nobody`, via setpriv, where the tests run as root.
"""
import json
import os
import socket
import stat
import subprocess
import sys
import time
from multiprocessing import AuthenticationError
from multiprocessing import connection as mpc

import pytest

from grpo_studio.engine.run import server as server_module
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.events import EventLog, read_events
from grpo_studio.engine.common.protocol import ProtocolError, decode
from grpo_studio.engine.common.runs import RunPaths, read_status
from grpo_studio.engine.run.server import EngineServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setattr(server_module, "HANDSHAKE_TIMEOUT_S", 0.5)
    monkeypatch.setattr(server_module, "MAX_CLIENTS", 4)
    paths = RunPaths(tmp_path / ("long-" * 25) / "run")  # > 100 bytes: once the abstract-namespace case
    paths.root.mkdir(parents=True)
    events = EventLog(paths.events)
    server = EngineServer(paths, events, Control()).start()
    yield paths, server
    server.close()
    events.close()


def authenticated(paths):
    return mpc.Client(read_status(paths)["endpoint"], family="AF_UNIX",
                      authkey=paths.secret.read_bytes().strip())


def ping(paths):
    with authenticated(paths) as conn:
        conn.send_bytes(b'{"cmd": "ping"}')
        return json.loads(conn.recv_bytes())["ok"]


def refusal_logs(paths):
    return [e["message"] for e in read_events(paths.events) if e["type"] == "log" and "refused" in e["message"]]


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------------------- case 13: private endpoint
def test_the_socket_is_a_file_in_a_private_short_folder_never_abstract(engine):
    paths, server = engine
    endpoint = read_status(paths)["endpoint"]
    assert not endpoint.startswith("\0") and len(endpoint.encode()) < 100
    assert stat.S_ISSOCK(os.stat(endpoint).st_mode)
    folder = os.path.dirname(endpoint)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and os.stat(folder).st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(endpoint).st_mode) == 0o600
    assert ping(paths)
    server.close()
    assert not os.path.exists(folder)  # removed with the engine


def test_xdg_runtime_dir_is_used_when_private(monkeypatch):
    import shutil
    import tempfile

    from grpo_studio.engine.run.socket_dir import make_socket_dir

    runtime = tempfile.mkdtemp(prefix="xdg-")  # 0700, and short enough for a socket path
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    try:
        made = make_socket_dir()
        assert str(made.parent) == runtime
        os.chmod(runtime, 0o755)  # not private: not trusted
        elsewhere = make_socket_dir()
        assert str(elsewhere.parent) != runtime
        elsewhere.rmdir()
    finally:
        shutil.rmtree(runtime)


def test_a_killed_engines_socket_folder_is_removed_by_the_next(tmp_path):
    from test_server import start_fake

    run = tmp_path / "run"
    first = start_fake(run)
    stale = os.path.dirname(read_status(RunPaths(run))["endpoint"])
    first.kill()  # SIGKILL: nothing cleaned up
    first.wait()
    assert os.path.isdir(stale)
    second = start_fake(run, "--steps", "50")
    try:
        assert not os.path.exists(stale)
        assert read_status(RunPaths(run))["endpoint"] != os.path.join(stale, "engine.sock")
    finally:
        second.kill()
        second.wait()
        server_module.remove_socket_dir(read_status(RunPaths(run))["endpoint"])


def _as_nobody(code):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to act as a second local user")
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3",
                           "-c", code], capture_output=True, text=True, timeout=30)


CONNECT = "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(s.recv(100))"


def test_another_user_cannot_even_reach_the_socket(engine):
    paths, _ = engine
    endpoint = read_status(paths)["endpoint"]
    probe = _as_nobody(CONNECT.replace("sys.argv[1]", repr(endpoint)))
    assert probe.returncode != 0 and "PermissionError" in probe.stderr
    assert ping(paths)


def test_another_user_is_refused_by_uid_even_with_open_permissions(engine):
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("SO_PEERCRED is Linux-only")
    paths, _ = engine
    endpoint = read_status(paths)["endpoint"]
    os.chmod(os.path.dirname(endpoint), 0o711)  # as if the folder's protection had failed
    os.chmod(endpoint, 0o666)
    probe = _as_nobody(CONNECT.replace("sys.argv[1]", repr(endpoint)))
    assert probe.returncode == 0 and probe.stdout.strip() == "b''"  # closed at once, not even a challenge
    assert wait_for(lambda: any("another user (uid 65534)" in m for m in refusal_logs(paths)))
    assert ping(paths)


# ---------------------------------------------------------------------- case 14: floods of connections
def test_a_silent_client_is_dropped_after_the_handshake_timeout(engine):
    paths, server = engine
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(read_status(paths)["endpoint"])
    assert wait_for(lambda: server.client_count == 1, 2)
    assert wait_for(lambda: server.client_count == 0, 5)  # HANDSHAKE_TIMEOUT_S = 0.5 here
    silent.settimeout(2)
    while silent.recv(4096):  # the challenge, then end of stream
        pass
    silent.close()
    assert ping(paths)


def test_connections_beyond_the_cap_are_closed_and_refusals_rate_limited(engine):
    paths, server = engine
    endpoint = read_status(paths)["endpoint"]
    held = []
    for _ in range(30):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(endpoint)
        held.append(sock)
    assert wait_for(lambda: server.client_count == 4, 2)
    time.sleep(0.2)
    assert server.client_count <= 4
    for sock in held:
        sock.close()
    assert wait_for(lambda: server.client_count == 0, 5)
    for _ in range(40):  # wrong keys: each is refused, but the log gets one line per interval, not 40
        with pytest.raises((AuthenticationError, EOFError, ConnectionError)):
            mpc.Client(endpoint, family="AF_UNIX", authkey=b"wrong")
    time.sleep(0.2)
    logs = refusal_logs(paths)
    assert 1 <= len(logs) <= 3, logs
    assert "beyond the limit of 4" in logs[0]
    assert ping(paths)


def test_refusal_counts_are_reported_after_the_interval(engine, monkeypatch):
    paths, server = engine
    monkeypatch.setattr(server_module, "REFUSAL_LOG_EVERY_S", 0.2)
    for _ in range(5):
        server.refused("a client with the wrong key")
    time.sleep(0.25)
    server.refused("a client with the wrong key")
    logs = refusal_logs(paths)
    assert len(logs) == 2 and "(5 times)" in logs[1]


# -------------------------------------------------------------------------------- case 15: deep JSON
def test_deeply_nested_json_is_a_protocol_error(engine):
    paths, server = engine
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ProtocolError, match="nested too deeply"):
        decode(b'{"cmd": ' + deep + b"}")
    with authenticated(paths) as conn:
        conn.send_bytes(deep)
        answer = json.loads(conn.recv_bytes())
        assert answer["ok"] is False and "nested too deeply" in answer["error"]
        conn.send_bytes(b'{"cmd": "ping"}')
        assert json.loads(conn.recv_bytes())["ok"]  # the same connection still works


# ------------------------------------------------------------------------- issue 27, finding 9
def test_a_huge_integer_is_a_protocol_error_not_a_dropped_connection(engine, capfd):
    paths, _server = engine
    with authenticated(paths) as conn:
        conn.send_bytes(b'{"cmd": "subscribe", "from_seq": ' + b"7" * 5000 + b"}")
        answer = json.loads(conn.recv_bytes())
        assert answer["ok"] is False and "not a JSON message" in answer["error"]
        conn.send_bytes(b'{"cmd": "ping"}')
        assert json.loads(conn.recv_bytes())["ok"] is True  # the same connection still works
    assert "Traceback" not in capfd.readouterr().err
    with pytest.raises(ProtocolError):
        decode(b"[" + b"1" * 5000 + b"]")


def test_unknown_commands_are_logged_at_a_limited_rate(engine, monkeypatch):
    paths, _server = engine
    monkeypatch.setattr(server_module, "REFUSAL_LOG_EVERY_S", 600.0)
    with authenticated(paths) as conn:
        for n in range(2000):
            conn.send_bytes(json.dumps({"cmd": f"nope{n}"}).encode())
            assert json.loads(conn.recv_bytes())["ok"] is False
    logs = [m for m in refusal_logs(paths) if "unknown command" in m]
    assert len(logs) == 1, logs
