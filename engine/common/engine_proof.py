"""Is the process named in a run's status.json really that run's engine? Torch-free.

A pid alone proves nothing: a run folder from a container (where the engine was pid 1), a folder on a
filesystem shared between machines, or a pid the system gave to another program since. What proves it is the
run's lock: an engine holds an exclusive lock on RUN/engine.lock for its whole life (lock.py), and on Linux
/proc/locks says which process holds which file's lock. Where that cannot be read (other systems), the
process must at least be a GRPO Studio process (its command line).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PROC_LOCKS = "/proc/locks"


def lock_holders(lock_file: Path) -> set[int] | None:
    """The pids holding a lock on lock_file (empty when none does), or None where this cannot be known (no
    /proc/locks, or no lock file)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        info = os.stat(lock_file)
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return None
    wanted = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    holders = set()
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":  # "->": a process waiting for the lock, not holding it
            continue
        if fields[5].lower() == wanted and fields[4].isdigit():
            holders.add(int(fields[4]))
    return holders


def lock_is_free(lock_file: Path) -> bool:
    """True when it is known that no process holds the run's lock (so no engine runs in the folder)."""
    holders = lock_holders(lock_file)
    return holders is not None and not holders


def is_grpo_studio_process(pid: int) -> bool:
    """The process runs GRPO Studio (its command line names it)."""
    try:
        import psutil

        command = " ".join(psutil.Process(pid).cmdline()).replace("-", "_").lower()
    except Exception:  # noqa: BLE001 - gone, or not ours to inspect: not proven
        return False
    return "grpo_studio" in command


def is_runs_engine(pid: int, lock_file: Path) -> bool:
    """Proof that pid is the engine of the run whose lock file this is: it holds the lock (Linux), or, where
    locks cannot be read, it is a GRPO Studio process."""
    holders = lock_holders(lock_file)
    if holders is not None:
        return pid in holders
    return is_grpo_studio_process(pid)
