"""events.jsonl: the durable record of a run, one JSON event per line, flushed as written.

`EventLog` numbers events without gaps across restarts (a resumed run continues the sequence) and hands
each event to live listeners (the socket server) after it is on disk, so a client that catches up from the
file and then follows live events can never miss or reorder one.
"""
from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grpo_studio.engine.common.disk import DiskFullError, is_disk_full
from grpo_studio.engine.common.event_types import check_fields, typed_event
from grpo_studio.engine.common.protocol import clean, encode

Listener = Callable[[dict], None]


class EventLog:
    """Appends with one `os.write` per event on an O_APPEND descriptor (created 0600: prompts and
    completions are nobody else's business). A failed write is cut back to the last whole line; a full
    disk raises DiskFullError. If the file is deleted or replaced while the run goes on, it is recreated
    and the sequence continues, so later events are not written into an unlinked file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.next_seq = _repair_and_count(self.path)
        self.step: int | None = None  # set by the loop once training runs; stamped on every event
        self._fd: int | None = None
        self._open()
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.recreated = 0  # how often the file had to be recreated (it was deleted or replaced)

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        self._identity = _identity(os.fstat(self._fd))
        if hasattr(os, "fchmod"):
            os.fchmod(self._fd, 0o600)  # a file from an older version may have been created 0644

    @property
    def _open_fd(self) -> int:
        assert self._fd is not None, "the event log is closed"  # emit() checks it first
        return self._fd

    def emit(self, type: str, **fields: Any) -> dict:
        """Append one event of `type` (TypeError for a field its type in event_types does not declare)."""
        check_fields(type, fields)
        with self._lock:
            if self._fd is None:
                raise ValueError("the event log is closed")
            event = {"type": type, "seq": self.next_seq, "time": round(time.time(), 3)}
            if self.step is not None and "step" not in fields:
                event["step"] = self.step
            event.update(clean(fields))
            lost = self._reopen_if_gone()
            self._append(encode(event) + b"\n")
            self.next_seq += 1
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        if lost:
            self.emit("log", level="warning", message=f"{self.path.name} was deleted or replaced during the "
                                                        f"run; recreated it from event {lost} on")
        return event

    def _reopen_if_gone(self) -> int | None:
        """Recreate the file when it was unlinked or replaced; returns the seq it restarts at, else None."""
        try:
            current = _identity(os.stat(self.path))
        except FileNotFoundError:
            current = None
        if current == self._identity and os.fstat(self._open_fd).st_nlink > 0:
            return None
        os.close(self._open_fd)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the whole run folder may be gone
        self._open()
        self.recreated += 1
        return self.next_seq

    def _append(self, data: bytes) -> None:
        size = os.fstat(self._open_fd).st_size
        try:
            written = os.write(self._open_fd, data)
            if written != len(data):  # a short write: the disk filled up mid-line
                raise OSError(errno.ENOSPC, "No space left on device (short write)")
        except OSError as error:
            try:
                os.ftruncate(self._open_fd, size)  # never leave half a line behind
            except OSError:
                pass
            if is_disk_full(error):
                raise DiskFullError(self.path.parent, f"writing {self.path.name}") from error
            raise

    def sync(self) -> None:
        """Force the file to disk (at checkpoints and the end; per-event fsync would cost too much)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def parse_event(line: bytes) -> dict | None:
    """One line of events.jsonl as an event, or None for anything else (not JSON, not UTF-8, NUL bytes, a bare
    number, an integer past Python's digit limit, a `seq` that is not a number): a damaged line is skipped by
    every reader, never raised."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return None
    if not isinstance(event, dict):
        return None
    seq = event.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        return None
    return typed_event(event)


class EventTail:
    """The one reader of events.jsonl: each `new_events()` yields the events of the whole lines appended since
    the last call (a line still being written waits for the next), so following a growing file re-reads
    nothing. Damaged lines are skipped and counted; `first_damaged` is the first one's line number."""

    def __init__(self, path: str | Path, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset  # bytes read so far, always at a line's start
        self.lines = 0  # whole lines read so far
        self.first_damaged: int | None = None

    def shrunk(self) -> bool:
        """The file is now shorter than what was read: it was rewritten (a torn line cut) or replaced."""
        try:
            return self.path.stat().st_size < self.offset
        except OSError:
            return False

    def new_events(self) -> Iterator[dict]:
        try:
            handle = open(self.path, "rb")
        except OSError:  # not there (yet)
            return
        with handle:
            handle.seek(self.offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    return  # torn or still being written
                self.offset += len(line)
                self.lines += 1
                event = parse_event(line)
                if event is None:
                    self.first_damaged = self.first_damaged or self.lines
                    continue
                yield event


def read_events(path: str | Path, from_seq: int = 0) -> Iterator[dict]:
    """Events of a file in order, from `from_seq` on. A torn last line (the engine died mid-write) and damaged
    lines are skipped."""
    for event in EventTail(path).new_events():
        if event.get("seq", -1) >= from_seq:
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
    event = parse_event(last)
    if event is not None and isinstance(event.get("seq"), int):
        return event["seq"] + 1
    return data.count(b"\n")
