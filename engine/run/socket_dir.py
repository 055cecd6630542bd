"""Where an engine's Unix socket lives: a fresh private folder with a short path. Torch-free.

Not the run folder: its path can be longer than sun_path allows (~104 bytes), and a run folder given with
--run-dir may be readable by others. Never Linux's abstract namespace: it has no file permissions, so any
local user could connect to it, or bind the name first. Instead `tempfile.mkdtemp` makes a new folder
(0700, unpredictable name, created atomically, so no one else can own it) in $XDG_RUNTIME_DIR — the
per-user runtime folder systemd provides, private by construction — when it is usable, else in the temp
folder, else /tmp. The folder is removed when the engine closes; a killed engine's is removed by the next
engine on the same run.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

SOCKET_NAME = "engine.sock"
PREFIX = "grpo-studio-sock-"
MAX_SOCKET_PATH = 100  # sun_path holds 104-108 bytes depending on the OS


def _private_base(folder: str | None) -> Path | None:
    """`folder` if it is a real folder that only this user can enter (XDG_RUNTIME_DIR must be)."""
    if not folder:
        return None
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return Path(folder)


def _candidates() -> list[Path]:
    found = []
    runtime = _private_base(os.environ.get("XDG_RUNTIME_DIR"))
    if runtime is not None:
        found.append(runtime)
    found += [Path(tempfile.gettempdir()), Path("/tmp")]
    return found


def make_socket_dir() -> Path:
    """A new 0700 folder whose `engine.sock` path fits in sun_path."""
    for base in _candidates():
        if len(str(base / (PREFIX + "x" * 8) / SOCKET_NAME).encode()) >= MAX_SOCKET_PATH:
            continue
        try:
            folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))  # mode 0700, fails if the name exists
        except OSError:
            continue
        return folder
    raise OSError("no folder with a short enough path for the engine's socket ($XDG_RUNTIME_DIR, $TMPDIR, /tmp)")


def remove_socket_dir(address: str | None) -> None:
    """Remove the private folder of a socket address made by make_socket_dir (and only such a folder:
    ours, named grpo-studio-*, holding nothing but the socket)."""
    if not address or address.startswith("\\\\"):
        return
    folder = Path(address).parent
    try:
        info = os.lstat(folder)
    except OSError:
        return
    if (not folder.name.startswith(PREFIX) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
            or any(p.name != SOCKET_NAME for p in folder.iterdir())):
        return
    shutil.rmtree(folder, ignore_errors=True)
