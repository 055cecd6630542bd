"""Talk to a running engine from the GUI, the tray or the terminal. Torch-free.

    send_command(run_dir, "stop")                     -> {"type": "reply", "cmd", "ok", "error"}
    for event in follow_events(run_dir, from_seq=0):  # socket while the engine lives, else events.jsonl
        ...

The endpoint and the key come from the run folder (status.json's "endpoint", the 0600 `secret`); only a
process of the same user can read the key. JSON over send_bytes / recv_bytes only, never pickle.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing import connection as mpc
from pathlib import Path
from typing import cast

from grpo_studio.engine.common.errors import StudioError
from grpo_studio.engine.common.event_types import typed_event
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.protocol import BUSY_GREETING, MAX_MESSAGE_BYTES, RunOutcome, decode, encode
from grpo_studio.engine.common.runs import RunPaths, read_status, run_is_live
from grpo_studio.engine.common.shell_args import quoted

POLL_S = 0.25


class EngineNotRunning(StudioError):
    """No engine answers for this run (finished, stopped, crashed, or not started yet)."""

    kind = "busy"


class EngineClient:
    def __init__(self, run_dir: str | Path, timeout: float = 5.0) -> None:
        self.paths = RunPaths(Path(run_dir))
        self.timeout = timeout
        self.conn: mpc.Connection | None = None
        self._pending: deque[dict] = deque()  # events that arrived while waiting for a reply

    def connect(self) -> EngineClient:
        status = read_status(self.paths)
        address = status.get("endpoint")
        if not address or not run_is_live(status, self.paths):
            raise EngineNotRunning(f"no engine is running for {self.paths.root.name}",
                                   "see its state with `grpo-studio runs`; continue a crashed or stopped run "
                                   f"with `grpo-studio train --resume --run-dir {quoted(self.paths.root)}`")
        try:
            secret = self.paths.secret.read_bytes().strip()
        except FileNotFoundError:
            raise EngineNotRunning(f"{self.paths.root} has no secret file", "the engine is not running") from None
        if address.startswith("\\\\"):  # Windows named pipe
            self.conn = mpc.Client(address, family="AF_PIPE", authkey=secret)
        else:
            self.conn = connect_unix(address, secret, self.timeout, self.paths.root.name)
        return self

    def _send(self, message: dict) -> None:
        if self.conn is None:
            self.connect()
        self._open().send_bytes(encode(message))

    def _open(self) -> mpc.Connection:
        assert self.conn is not None, "connect() first"
        return self.conn

    def _read(self, timeout: float | None) -> dict | None:
        """The next message from the engine, or None when none came within `timeout` seconds."""
        if timeout is not None and not self._open().poll(timeout):
            return None
        return decode(self._open().recv_bytes(MAX_MESSAGE_BYTES))  # raises EOFError when the engine is gone

    def subscribe(self, from_seq: int = 0) -> dict:
        """Ask for every event from `from_seq` on (then live); returns the engine's reply."""
        return self.command({"cmd": "subscribe", "from_seq": from_seq})

    def recv(self, timeout: float | None = None) -> dict | None:
        """The next event (or reply), None after `timeout` seconds without one; EOFError once the engine closed."""
        if self._pending:
            return self._pending.popleft()
        return self._read(timeout)

    def command(self, cmd: str | dict) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept for recv()."""
        message = {"cmd": cmd} if isinstance(cmd, str) else dict(cmd)
        self._send(message)
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the engine did not answer {message['cmd']!r} within {self.timeout:.0f} s")
            answer = self._read(left)
            if answer is None:
                continue
            if answer.get("type") == "reply":
                return answer
            self._pending.append(answer)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None

    def __enter__(self) -> EngineClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()


class EngineBusy(StudioError):
    """The engine serves as many clients as it takes at once."""

    kind = "busy"


def connect_unix(address: str, secret: bytes, timeout: float, name: str) -> mpc.Connection:
    """Connect to an engine's Unix socket and prove the key, each within `timeout` seconds: an engine that is
    stopped (SIGSTOP), hung or flooded gives a TimeoutError that says so instead of a hang."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
    except TimeoutError:
        sock.close()
        raise TimeoutError(f"the engine of {name} did not accept the connection within {timeout:g} s "
                           "(is it stopped or hung? `kill -CONT PID` continues a stopped one)") from None
    except OSError:
        sock.close()
        raise
    sock.setblocking(True)
    conn = mpc.Connection(sock.detach())
    expired = threading.Event()

    def give_up() -> None:  # wakes the blocked handshake read
        expired.set()
        try:
            with socket.socket(fileno=os.dup(conn.fileno())) as dup:
                dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        handshake = cast(mpc.Connection, _Handshake(conn))  # has the two methods the challenge calls
        mpc.answer_challenge(handshake, secret)
        mpc.deliver_challenge(handshake, secret)
    except (EOFError, OSError, AuthenticationError, AssertionError) as error:
        conn.close()
        if expired.is_set():
            raise TimeoutError(f"the engine of {name} did not answer within {timeout:g} s (is it stopped or "
                               "hung? `kill -CONT PID` continues a stopped one)") from None
        if isinstance(error, AuthenticationError):
            raise
        raise EOFError("the engine closed the connection during the key handshake (it may be exiting)") from None
    except EngineBusy:
        conn.close()
        raise
    finally:
        watchdog.cancel()
    return conn


class _Handshake:
    """The connection as the key handshake sees it: an engine's "busy" greeting becomes EngineBusy."""

    def __init__(self, conn: mpc.Connection) -> None:
        self.conn = conn

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        data = self.conn.recv_bytes(maxlength)
        if data.startswith(BUSY_GREETING):
            reason = data[len(BUSY_GREETING):].decode("utf-8", "replace")
            raise EngineBusy(f"the engine refused the connection: {reason}",
                             "close an `attach` or app window that follows this run, then try again")
        return data

    def send_bytes(self, data: bytes) -> None:
        self.conn.send_bytes(data)


def send_command(run_dir: str | Path, cmd: str | dict, timeout: float = 5.0) -> dict:
    """Connect, send one command (stop | pause | resume | save_now | ping), return the reply, disconnect."""
    with EngineClient(run_dir, timeout=timeout) as client:
        return client.command(cmd)


def follow_events(run_dir: str | Path, from_seq: int = 0, stop_at_done: bool = True, timeout: float = 5.0, *,
                  stop: threading.Event | None = None, start_grace_s: float = 0.0) -> Iterator[dict]:
    """Every event of a run from `from_seq` on, in order and without gaps: over the socket while the engine
    is alive, else by tailing events.jsonl. Ends at the run's last `done` (when `stop_at_done`; see
    RunOutcome), when the engine is gone and the file has nothing more, or as soon as `stop` is set.

    `start_grace_s`: an engine was just launched on this folder (a new or resumed run). A `done` already in the
    file does not end the follow, and the engine gets this long to come up before "no engine" ends it."""
    paths = RunPaths(Path(run_dir))
    stop = stop or threading.Event()
    outcome = RunOutcome(ignore_before_seq=next_seq_in_file(paths.events) if start_grace_s > 0 else 0)
    grace_until = time.monotonic() + start_grace_s
    next_seq = from_seq

    def final(event: dict) -> bool:
        """This event ends the follow: the latest segment's done, with nothing after it in the file."""
        outcome.see(event)
        return (stop_at_done and outcome.done is event
                and next(read_events(paths.events, event["seq"] + 1), None) is None)

    def gone() -> bool:
        return not run_is_live(read_status(paths), paths) and time.monotonic() >= grace_until

    while not stop.is_set():
        client = EngineClient(run_dir, timeout=timeout)
        try:
            client.connect()
            client.subscribe(next_seq)
            subscribed = True
        except Exception:  # noqa: BLE001 - no engine, or it is just starting / ending: read the file
            client.close()
            subscribed = False
        if subscribed:
            try:
                while not stop.is_set():
                    try:
                        event = client.recv(POLL_S)
                    except (EOFError, OSError):
                        break
                    if event is None:
                        if not run_is_live(read_status(paths), paths):
                            break
                        continue
                    if event.get("type") == "reply" or event.get("seq") != next_seq:
                        continue
                    next_seq += 1
                    event = typed_event(event)  # as parse_event does for the file's lines
                    yield event
                    if final(event):
                        return
            finally:
                client.close()
        # The socket is gone (or never was): the file has the rest, and may still grow. Whether the engine
        # is gone is asked first, so that everything it wrote before exiting is in what is read next.
        ended = gone()
        for event in _consecutive_events(paths, next_seq):
            next_seq += 1
            yield event
            if final(event):
                return
        if ended:
            return
        stop.wait(POLL_S)


def next_seq_in_file(path: Path) -> int:
    """The seq the next event appended to an events file will get (0 when there is none)."""
    last = -1
    for event in read_events(path):
        last = event.get("seq", last)
    return last + 1


def _consecutive_events(paths: RunPaths, start: int) -> Iterator[dict]:
    """events.jsonl's events from seq `start` on, up to the first gap (a line still being written)."""
    expected = start
    for event in read_events(paths.events, start):
        if event.get("seq") != expected:
            return
        expected += 1
        yield event
