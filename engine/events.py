"""events.jsonl: the durable record of a run, one JSON event per line, flushed as written.

`EventLog` numbers events without gaps across restarts (a resumed run continues the sequence) and hands
each event to live listeners (the socket server) after it is on disk, so a client that catches up from the
file and then follows live events can never miss or reorder one.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from grpo_studio.engine.protocol import clean, encode

Listener = Callable[[dict], None]


class EventLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.next_seq = _repair_and_count(self.path)
        self.step: int | None = None  # set by the loop once training runs; stamped on every event
        self._file = open(self.path, "ab")
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def emit(self, type: str, **fields: Any) -> dict:
        with self._lock:
            event = {"type": type, "seq": self.next_seq, "time": round(time.time(), 3)}
            if self.step is not None and "step" not in fields:
                event["step"] = self.step
            event.update(clean(fields))
            self._file.write(encode(event) + b"\n")
            self._file.flush()
            self.next_seq += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def sync(self) -> None:
        """Force the file to disk (at checkpoints and the end; per-event fsync would cost too much)."""
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                self._file.close()


def read_events(path: str | Path, from_seq: int = 0) -> Iterator[dict]:
    """Events of a file in order, from `from_seq` on. A torn last line (the engine died mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("seq", -1) >= from_seq:
                yield event


def _repair_and_count(path: Path) -> int:
    """Cut a torn last line left by a killed engine; return the next sequence number."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not last:
        return 0
    try:
        return int(json.loads(last)["seq"]) + 1
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return data.count(b"\n")
