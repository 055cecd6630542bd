"""One engine per run folder: an exclusive, non-blocking lock on run_dir/engine.lock held for the engine's life.

The operating system drops the lock when the process dies (even on kill -9), so a crashed run never stays
locked. The lock file also records the holder's pid, so a refused second start can say who holds the run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from grpo_studio.engine.common.errors import RunBusyError

LOCK_NAME = "engine.lock"


class RunLock:
    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._handle: IO[bytes] | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle = open(self.path, "a+b")
        try:
            _lock_file(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().decode("ascii", "replace").strip() or "?"
            handle.close()
            raise RunBusyError(f"run {self.run_dir.name} is already being trained by process {holder}",
                               "follow it with `grpo-studio attach RUN`, stop it with `grpo-studio stop RUN`, "
                               "or use another --run-dir") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()).encode("ascii"))
            handle.flush()
        except OSError:  # e.g. the disk is full: give the lock back rather than hold it unseen
            handle.close()
            raise
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            try:
                _unlock_file(self._handle)
            finally:
                self._handle.close()
                self._handle = None

    close = release

    def renew(self) -> None:
        """Lock the run's lock file again after it was removed with its folder (the old lock is on a file that
        no longer has a name, which no one else can see)."""
        old, self._handle = self._handle, None
        self.acquire()
        if old is not None:
            old.close()

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_file(handle: IO[bytes]) -> None:
    if sys.platform == "win32":  # lock the first byte; fails at once when another process holds it
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlock_file(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        except OSError:
            pass
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
