"""The engine's live endpoint: an authenticated local socket that streams events and takes commands.

    server = EngineServer(paths, events, control)
    server.start()     # writes the 0600 secret and status.json's "endpoint"; serves in background threads
    ...
    server.close()     # stops accepting, drops clients, removes the socket file

`multiprocessing.connection.Listener` on an AF_UNIX socket (a named pipe on Windows), with the secret as
authkey. Messages are JSON objects via send_bytes / recv_bytes only: `Connection.recv` would unpickle, i.e.
run code from the peer.

Who may connect (socket_dir.py has the where): the socket lives in a fresh private 0700 folder with a short
path (under $XDG_RUNTIME_DIR, else the temp folder) — never Linux's abstract namespace, which has no file
permissions — so other users can neither connect nor take the address first. On Linux the peer's uid is
checked as well (SO_PEERCRED). A peer must finish the key handshake within HANDSHAKE_TIMEOUT_S, at most
MAX_CLIENTS are served at once, and refusals are logged at most once per REFUSAL_LOG_EVERY_S (with a count),
so a flood of connections can neither exhaust threads and file descriptors nor fill events.jsonl.

A client that sends `{"cmd": "subscribe", "from_seq": N}` gets every event from N on, first from
events.jsonl and then live, with neither gap nor duplicate: its queue listens *before* the file is read, and
queued events the file already gave are skipped by seq. A client that reads too slowly to keep up (queue
full) is dropped rather than let the training loop wait for it.
"""
from __future__ import annotations

import hashlib
import os
import queue
import secrets
import socket
import struct
import sys
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing import connection as mpc
from pathlib import Path

from grpo_studio.engine.common.errors import StudioError
from grpo_studio.engine.common.events import EventLog, read_events
from grpo_studio.engine.common.protocol import BUSY_GREETING, COMMANDS, ProtocolError, decode, encode, reply
from grpo_studio.engine.common.runs import RunPaths, folder_identity, read_status, write_status
from grpo_studio.engine.run.socket_dir import SOCKET_NAME, make_socket_dir, remove_socket_dir
from grpo_studio.engine.train.control import Control

QUEUE_SIZE = 10_000
HANDSHAKE_TIMEOUT_S = 5.0  # a peer that has not proved the key by then is dropped
MAX_CLIENTS = 32  # served at once (the GUI, the tray and a few terminals need a handful)
REFUSAL_LOG_EVERY_S = 10.0
_DROP = object()  # queued to wake a subscriber's sender when the client must go


def pipe_address(run_dir: Path) -> str:
    """Windows: the named pipe a run's engine listens on."""
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
    return rf"\\.\pipe\grpo-studio-{digest}"


def peer_uid(conn: mpc.Connection) -> int | None:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED); None where unknown."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                 struct.calcsize("3i")))
        return uid
    except OSError:
        return None


def write_secret(path: Path) -> bytes:
    """32 random bytes as hex, readable by the owner only (created 0600, never world-readable on the way)."""
    secret = secrets.token_hex(32)
    path.unlink(missing_ok=True)  # an old file may have looser permissions; O_CREAT would keep them
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret)
    return secret.encode("ascii")


class EngineServer:
    def __init__(self, paths: RunPaths, events: EventLog, control: Control) -> None:
        self.paths = paths
        self.events = events
        self.control = control
        self.address: str | None = None
        self._socket_dir: Path | None = None
        self._listener: mpc.Listener | None = None
        self._closed = threading.Event()
        self._clients: set[_Client] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._refusals: dict[str, int] = {}  # reason -> refusals not yet logged
        self._examples: dict[str, str] = {}  # reason -> the first refused message of those
        self._last_refusal_log: dict[str, float] = {}  # reason -> when it was last logged

    def start(self) -> EngineServer:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._secret = write_secret(self.paths.secret)
        if sys.platform == "win32":
            self.address = pipe_address(self.paths.root)
            self._listener = mpc.Listener(self.address, family="AF_PIPE")
        else:
            # A killed engine leaves its private folder behind: we hold the run's lock, so it is ours to remove.
            remove_socket_dir(read_status(self.paths).get("endpoint"))
            self._socket_dir = make_socket_dir()
            self.address = str(self._socket_dir / SOCKET_NAME)
            # No authkey here: the handshake runs in each client's thread, so a silent peer cannot block accept().
            self._listener = mpc.Listener(self.address, family="AF_UNIX")
            os.chmod(self.address, 0o600)
        write_status(self.paths, endpoint=self.address, folder=folder_identity(self.paths.root))
        self._thread = threading.Thread(target=self._accept_loop, name="engine-server", daemon=True)
        self._thread.start()
        return self

    @property
    def key(self) -> bytes:
        """The secret clients prove (written to RUN/secret at start)."""
        return self._secret

    @property
    def client_count(self) -> int:
        """Clients connected now (the handshake included): what the client cap counts."""
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._listener is not None:
            try:
                self._listener.close()  # also removes the socket file
            except OSError:
                pass
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.finish(timeout=2.0)  # let subscribers receive what is queued (the `done` event) first
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._socket_dir is not None:
            remove_socket_dir(self.address)

    def __enter__(self) -> EngineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- internals
    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None  # start() opens it before this thread runs
        while not self._closed.is_set():
            try:
                conn = listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                time.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            uid = peer_uid(conn)
            if uid is not None and uid != os.getuid():
                conn.close()
                self.refused(f"a process of another user (uid {uid})")
                continue
            client = _Client(self, conn)
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    return
                full = len(self._clients) >= MAX_CLIENTS
                if not full:
                    self._clients.add(client)
            if full:
                _say_busy(conn, f"it serves {MAX_CLIENTS} clients at once already")
                conn.close()
                self.refused(f"a client beyond the limit of {MAX_CLIENTS} at once")
                continue
            threading.Thread(target=client.serve, name="engine-client", daemon=True).start()

    def refused(self, reason: str, example: str | None = None) -> None:
        """Log a refused connection (or message), for each reason at most once per REFUSAL_LOG_EVERY_S with the
        count since; `example`: what was refused (the first of each reason is shown)."""
        with self._lock:
            count = self._refusals[reason] = self._refusals.get(reason, 0) + 1
            if example is not None:
                self._examples.setdefault(reason, example)
            now = time.monotonic()
            if now - self._last_refusal_log.get(reason, float("-inf")) < REFUSAL_LOG_EVERY_S:
                return
            self._last_refusal_log[reason] = now
            del self._refusals[reason]
            example = self._examples.pop(reason, None)
        self._log("warning", f"refused {reason}" + (f": {example}" if example is not None else "")
                             + (f" ({count} times) (further refusals are logged every {REFUSAL_LOG_EVERY_S:g} s)"
                                if count > 1 else ""))

    def _forget(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)

    def _log(self, level: str, message: str) -> None:
        try:
            self.events.emit("log", level=level, message=message)
        except (ValueError, OSError, StudioError):  # the run is ending, or its disk is full: not the client's
            pass


def _say_busy(conn: mpc.Connection, reason: str) -> None:
    """Tell a refused client why (in place of the key challenge), without ever blocking the accept loop."""
    try:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.setblocking(False)
            payload = BUSY_GREETING + reason.encode("utf-8")
            sock.send(struct.pack("!i", len(payload)) + payload)  # send_bytes' framing
    except OSError:
        pass


class _Client:
    def __init__(self, server: EngineServer, conn: mpc.Connection) -> None:
        self.server = server
        self.conn = conn
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        self.send_lock = threading.Lock()
        self.gone = threading.Event()
        self.subscribed = False
        self.authenticated = False
        self.stream_thread: threading.Thread | None = None

    def _handshake_timed_out(self) -> None:
        if not self.authenticated and not self.gone.is_set():
            self.server.refused(f"a client that did not authenticate within {HANDSHAKE_TIMEOUT_S:g} s")
            self.drop()

    def serve(self) -> None:
        # A peer that connects and stays silent would hold this thread forever: drop it unless the
        # handshake is done in time (drop() shuts the socket down, which wakes the blocked read).
        watchdog = threading.Timer(HANDSHAKE_TIMEOUT_S, self._handshake_timed_out)
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                mpc.deliver_challenge(self.conn, self.server._secret)
                mpc.answer_challenge(self.conn, self.server._secret)
            except AuthenticationError:
                self.server.refused("a client with the wrong key")
                return
            finally:
                watchdog.cancel()
            if self.gone.is_set():
                return
            self.authenticated = True
            while not self.gone.is_set():
                payload = self.conn.recv_bytes(1 << 20)  # never recv(): that unpickles
                self._handle(payload)
        except (EOFError, OSError):
            pass  # the client went away, or close() closed it
        finally:
            self.drop()
            self.server._forget(self)

    def _handle(self, payload: bytes) -> None:
        try:
            message = decode(payload)
        except ProtocolError as error:
            # rate-limited like refused connections: a flood of bad messages must not fill events.jsonl
            self.server.refused("a malformed message from a client", str(error)[:120])
            self.send(reply("?", False, str(error)))
            return
        cmd = message.get("cmd")
        if not isinstance(cmd, str) or cmd not in COMMANDS:
            shown = repr(cmd)[:80]
            self.server.refused("an unknown command from a client", shown)
            self.send(reply(shown, False, f"unknown command {shown}; known: {', '.join(COMMANDS)}"))
            return
        if cmd == "ping":
            self.send(reply("ping", True))
        elif cmd == "subscribe":
            self._subscribe(message.get("from_seq", 0))
        else:
            refused = self.server.control.handle(cmd)  # None: done; else why not
            self.send(reply(cmd, refused is None, refused))

    def _subscribe(self, from_seq: object) -> None:
        if self.subscribed:
            self.send(reply("subscribe", False, "already subscribed"))
            return
        if not isinstance(from_seq, int) or isinstance(from_seq, bool) or from_seq < 0:
            self.send(reply("subscribe", False, "from_seq must be a non-negative integer"))
            return
        self.subscribed = True
        self.server.events.add_listener(self._on_event)  # first: from here on nothing can slip past
        self.send(reply("subscribe", True))
        self.stream_thread = threading.Thread(target=self._stream, args=(from_seq,), name="engine-client-events",
                                              daemon=True)
        self.stream_thread.start()

    def _on_event(self, event: dict) -> None:
        # Runs on the training thread: never block it. A client this far behind is dropped.
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.drop()

    def _stream(self, from_seq: int) -> None:
        last = from_seq - 1
        try:
            last = self._send_file(from_seq, last)
            while not self.gone.is_set():
                event = self.queue.get()
                if event is _DROP:
                    return
                if event["seq"] <= last:
                    continue  # the file already gave it
                if event["seq"] > last + 1:
                    # Two threads emitted at once and their listeners ran out of order; the file (written
                    # under the log's lock, before any listener runs) has the ones in between.
                    last = self._send_file(last + 1, last, below=event["seq"])
                self.send(event)
                last = event["seq"]
        except (OSError, EOFError, ValueError):
            self.drop()

    def _send_file(self, from_seq: int, last: int, below: int | None = None) -> int:
        """Send events.jsonl's events from `from_seq` (up to `below`); returns the last seq sent."""
        for event in read_events(self.server.paths.events, from_seq):
            if below is not None and event["seq"] >= below:
                break
            if event["seq"] > last:
                self.send(event)
                last = event["seq"]
        return last

    def send(self, message: dict) -> None:
        with self.send_lock:
            self.conn.send_bytes(encode(message))

    def finish(self, timeout: float) -> None:
        """Deliver the events already queued, then disconnect (the engine is closing)."""
        self.server.events.remove_listener(self._on_event)
        thread = self.stream_thread
        if thread is not None and not self.gone.is_set():
            try:
                self.queue.put(_DROP, timeout=timeout)
            except queue.Full:
                pass
            thread.join(timeout)
        self.drop()

    def drop(self) -> None:
        if self.gone.is_set():
            return
        self.gone.set()
        self.server.events.remove_listener(self._on_event)
        try:
            self.queue.put_nowait(_DROP)
        except queue.Full:
            with self.queue.mutex:
                self.queue.queue.clear()
            self.queue.put_nowait(_DROP)
        try:
            # close() alone does not wake a thread blocked reading this socket; shutdown does (both ends).
            if sys.platform != "win32":
                with socket.socket(fileno=os.dup(self.conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.conn.close()
        except OSError:
            pass
