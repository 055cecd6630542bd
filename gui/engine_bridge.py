"""Engine events as Qt signals, and commands to engines, without ever blocking the GUI thread.

`RunFollower` (a QThread) follows one run: live through engine.client (subscribe from a seq, so nothing is
missed between the file and the socket) while the engine is alive, else by reading events.jsonl — all of it
for a finished run, then tailing the file while an engine without a reachable socket is still writing it.
Events arrive in batches (`events_event(list)`), so replaying a long run is one chart redraw, not thousands.

`EngineBridge` owns the followers and sends commands (stop / pause / resume / save_now) from a worker thread,
reporting the engine's reply with `command_event`.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from grpo_studio.engine.events import read_events
from grpo_studio.engine.runs import RunPaths, read_status

LIVE_STATES = ("starting", "running", "paused")
POLL_S = 0.25
START_GRACE_S = 60.0  # how long a just-launched engine may take to write its first status
BATCH_S = 0.1  # live events are gathered this long before one signal, so fast engines cannot flood the GUI


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def engine_alive(run_dir: str | Path) -> bool:
    """The run's engine process is still there and says it is running (status.json + a live pid)."""
    status = read_status(RunPaths(Path(run_dir)))
    return status.get("state") in LIVE_STATES and pid_alive(status.get("pid"))


class RunFollower(QThread):
    events_event = Signal(list)
    mode_event = Signal(str)  # "live" (socket), "tail" (file while the engine runs), "replay" (finished), "ended"

    def __init__(self, run_dir: str | Path, from_seq: int = 0, parent: QObject | None = None, *,
                 expect_start: bool = False) -> None:
        """`expect_start`: an engine was just launched for this folder (new or resumed run): an old `done` in
        the file does not end the follow, and the engine gets START_GRACE_S to come up."""
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.next_seq = from_seq
        self._stop = threading.Event()
        self._done = False
        self.min_done_seq = _count_events(RunPaths(self.run_dir).events) if expect_start else 0
        self.grace_until = time.monotonic() + START_GRACE_S if expect_start else 0.0

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ thread body
    def run(self) -> None:
        paths = RunPaths(self.run_dir)
        self._replay_file(paths)  # everything already on disk, in one batch
        if (self._done and not engine_alive(self.run_dir)) or self._stop.is_set():
            self.mode_event.emit("replay" if not self._stop.is_set() else "ended")
            return
        while not (engine_alive(self.run_dir) or self._done or self._stop.is_set()) and self._starting(paths):
            self._stop.wait(POLL_S)  # the engine was just launched: give it time to take the folder
            self._replay_file(paths)
        if engine_alive(self.run_dir) and self._follow_socket():
            self.mode_event.emit("ended")
            return
        self._tail_file(paths)
        self.mode_event.emit("ended")

    def _deliver(self, batch: list[dict]) -> None:
        fresh = [e for e in batch if isinstance(e.get("seq"), int) and e["seq"] >= self.next_seq]
        if not fresh:
            return
        self.next_seq = fresh[-1]["seq"] + 1
        for event in fresh:  # a resumed run writes hello after the old done: only the latest of the two counts
            if event.get("type") == "hello":
                self._done = False
            elif event.get("type") == "done" and event["seq"] >= self.min_done_seq:
                self._done = True
        self.events_event.emit(fresh)

    def _replay_file(self, paths: RunPaths) -> None:
        self._deliver(list(read_events(paths.events, self.next_seq)))

    def _follow_socket(self) -> bool:
        """Follow live events over the engine's socket; False when no client could connect."""
        try:
            from grpo_studio.engine.client import EngineClient
        except ImportError:
            return False
        try:
            client = EngineClient(self.run_dir, timeout=5.0)
            client.connect()
            client.subscribe(from_seq=self.next_seq)
        except Exception:  # noqa: BLE001 - engine just exited, socket not up yet, ...: fall back to the file
            return False
        self.mode_event.emit("live")
        batch: list[dict] = []
        flush_at = time.monotonic() + BATCH_S
        try:
            while not self._stop.is_set() and not self._done:
                try:
                    event = client.recv(timeout=POLL_S)
                except (EOFError, OSError, ConnectionError):
                    break
                except Exception:  # noqa: BLE001 - a malformed message must not kill the follower
                    event = None
                if event is not None and event.get("type") != "reply":
                    batch.append(event)
                if batch and (time.monotonic() >= flush_at or event is None
                              or event.get("type") == "done"):
                    self._deliver(batch)
                    batch, flush_at = [], time.monotonic() + BATCH_S
                if event is None and not engine_alive(self.run_dir):
                    break
        finally:
            if batch:
                self._deliver(batch)
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        self._replay_file(RunPaths(self.run_dir))  # anything written after the socket closed
        return True

    def _tail_file(self, paths: RunPaths) -> None:
        self.mode_event.emit("tail")
        quiet_polls = 0
        while not self._stop.is_set() and not self._done:
            before = self.next_seq
            self._replay_file(paths)
            if self.next_seq == before:
                quiet_polls += 1
                # The engine is gone (or never came up): read once more and end.
                if quiet_polls % 4 == 0 and not engine_alive(self.run_dir):
                    self._replay_file(paths)
                    if not self._starting(paths):
                        return
            else:
                quiet_polls = 0
            self._stop.wait(POLL_S)

    def _starting(self, paths: RunPaths) -> bool:
        """A just-launched engine may not have written status.json yet: keep waiting during the grace time."""
        return time.monotonic() < self.grace_until


class EngineBridge(QObject):
    """Followers per run and commands to engines; the pages and the tray talk to runs only through this."""

    command_event = Signal(str, str, dict)  # run_dir, cmd, reply {ok, error, ...}

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._followers: set[RunFollower] = set()

    def follow(self, run_dir: str | Path, from_seq: int = 0, expect_start: bool = False) -> RunFollower:
        follower = RunFollower(run_dir, from_seq, self, expect_start=expect_start)
        self._followers.add(follower)
        follower.finished.connect(lambda f=follower: self._followers.discard(f))
        return follower

    def send(self, run_dir: str | Path, cmd: str) -> None:
        """Send `cmd` in the background; the reply (or the failure) comes back as command_event."""
        run_dir = str(run_dir)
        thread = threading.Thread(target=self._send, args=(run_dir, cmd), daemon=True)
        thread.start()

    def _send(self, run_dir: str, cmd: str) -> None:
        reply = send_engine_command(run_dir, cmd)
        self.command_event.emit(run_dir, cmd, reply)

    def shutdown(self) -> None:
        """Stop following (the engines keep running: closing the GUI never stops a run)."""
        for follower in list(self._followers):
            follower.stop()
        for follower in list(self._followers):
            follower.wait(2000)


def _count_events(path: Path) -> int:
    """The next seq of an events file (0 when there is none)."""
    last = -1
    for event in read_events(path):
        last = event.get("seq", last)
    return last + 1


def send_engine_command(run_dir: str | Path, cmd: str) -> dict:
    """One command to a run's engine, as {ok, error}; never raises."""
    try:
        from grpo_studio.engine.client import send_command
    except ImportError:
        send_command = None
    if send_command is not None:
        try:
            reply = send_command(Path(run_dir), {"cmd": cmd})
            return reply if isinstance(reply, dict) else {"ok": False, "error": "no reply"}
        except Exception as exc:  # noqa: BLE001 - shown to the user in the status bar
            if cmd != "stop":
                return {"ok": False, "error": f"could not reach the engine: {exc}"}
    if cmd == "stop":  # no socket: SIGTERM is the engine's "stop and save" too
        pid = read_status(RunPaths(Path(run_dir))).get("pid")
        if pid_alive(pid):
            try:
                os.kill(int(pid), signal.SIGTERM)
                return {"ok": True, "error": None}
            except OSError as exc:
                return {"ok": False, "error": str(exc)}
        return {"ok": False, "error": "the engine is not running"}
    return {"ok": False, "error": "the engine's control socket is not available"}
