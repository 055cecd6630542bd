"""Requests from clients (stop, pause, resume, save_now) as thread-safe flags the training loop reads
between steps. The socket server calls `handle`; the loop never blocks on the network."""
from __future__ import annotations

import threading
from collections.abc import Callable


class Control:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._save = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def handle(self, cmd: str) -> str | None:
        """Apply one command; returns an error text for commands this object does not know."""
        if cmd == "stop":
            self._stop.set()
            self._running.set()  # a paused run must wake up to stop
        elif cmd == "pause":
            self._running.clear()
        elif cmd == "resume":
            self._running.set()
        elif cmd == "save_now":
            self._save.set()
        else:
            return f"unknown command {cmd!r}"
        return None

    def sync(self) -> None:
        """Called at every step boundary; one process has nothing to agree on (see distributed_control)."""

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def take_save_request(self) -> bool:
        """True once per save_now request."""
        if self._save.is_set():
            self._save.clear()
            return True
        return False

    def wait_while_paused(self, poll_s: float = 0.2, on_save: Callable[[], None] | None = None) -> bool:
        """Block while paused; returns True if the run was paused at all. A save_now that arrives meanwhile is
        served at once by `on_save` (a paused run is between steps: its state is complete), not after resume."""
        if self._running.is_set():
            return False
        while not self._running.wait(poll_s):
            if on_save is not None and self.take_save_request():
                on_save()
        return True
