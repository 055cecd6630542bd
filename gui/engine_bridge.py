"""Engine events as Qt signals, and commands to engines, without ever blocking the GUI thread.

`RunFollower` (a QThread) is a thin loop over engine.client.follow_events, the one follower of a run (socket
while the engine lives, else events.jsonl). Events are handed to the GUI thread in batches: the worker queues
them and signals only when the queue was empty, so the GUI takes whatever piled up in one go — a replay of a
long run is a few batches, a live event arrives at once.

`EngineBridge` owns the followers and sends commands (stop / pause / resume / save_now) from a worker thread,
reporting the engine's reply with `command_event`.
"""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal

from grpo_studio.engine.common.engine_proof import is_runs_engine
from grpo_studio.engine.common.runs import RunPaths, engine_alive, read_status, run_is_live

START_GRACE_S = 60.0  # how long a just-launched engine may take to come up (torch import, a slow disk)


def run_dir_is_live(run_dir: str | Path) -> bool:
    """The run's engine is up (status.json says starting / running / paused, and it is that process)."""
    paths = RunPaths(Path(run_dir))
    return run_is_live(read_status(paths), paths)


class RunFollower(QThread):
    events_event = Signal(list)  # events in order, each once
    ended_event = Signal()       # the follow is over: the run ended, its engine is gone, or stop() was called
    _arrived = Signal()          # worker -> GUI thread: the queue has events

    def __init__(self, run_dir: str | Path, from_seq: int = 0, parent: QObject | None = None, *,
                 expect_start: bool = False) -> None:
        """`expect_start`: an engine was just launched for this folder (new or resumed run): an old `done` in
        the file does not end the follow, and the engine gets START_GRACE_S to come up."""
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.from_seq = from_seq
        self.start_grace_s = START_GRACE_S if expect_start else 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._queue: list[dict] = []
        self._ended = False
        self._arrived.connect(self._drain)  # queued: the follower object lives in the GUI thread

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        # imported here: the window shows before the socket code loads
        from grpo_studio.engine.common.client import follow_events

        try:
            for event in follow_events(self.run_dir, self.from_seq, stop=self._stop,
                                       start_grace_s=self.start_grace_s):
                self._push(event)
        finally:
            with self._lock:
                self._ended = True
            self._arrived.emit()

    def _push(self, event: dict) -> None:
        with self._lock:
            first = not self._queue
            self._queue.append(event)
        if first:
            self._arrived.emit()

    def _drain(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
            ended, self._ended = self._ended, False
        if batch:
            self.events_event.emit(batch)
        if ended:
            self.ended_event.emit()


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


def send_engine_command(run_dir: str | Path, cmd: str) -> dict:
    """One command to a run's engine, as {ok, error}; never raises."""
    from grpo_studio.engine.common.client import send_command

    try:
        reply = send_command(Path(run_dir), {"cmd": cmd})
        return reply if isinstance(reply, dict) else {"ok": False, "error": "no reply"}
    except Exception as exc:  # noqa: BLE001 - shown to the user in the status bar
        if cmd != "stop":
            return {"ok": False, "error": f"could not reach the engine: {exc}"}
    # stop without a socket: SIGTERM is the engine's "stop and save" too
    paths = RunPaths(Path(run_dir))
    status = read_status(paths)
    if not engine_alive(status):
        return {"ok": False, "error": "the engine is not running"}
    if not is_runs_engine(int(status["pid"]), paths.lock):  # never signal a process that merely has the pid
        return {"ok": False, "error": f"process {status['pid']} named in status.json is not this run's engine "
                                      "(it does not hold the run's lock); nothing was signalled"}
    try:
        os.kill(int(status["pid"]), signal.SIGTERM)
        return {"ok": True, "error": None}
    except OSError as exc:
        return {"ok": False, "error": str(exc)}
