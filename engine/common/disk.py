"""A full disk, told as such: `DiskFullError` (the `error` event's kind `disk_full`) from whatever a failed
write raised, plus a small reserve file that gives a run room to say so.

Libraries report a full disk in different ways: Python with errno ENOSPC, safetensors as "No space left on
device (os error 28)", torch.save as an assertion about stream positions with no errno at all. So besides
the errno and the text, a failed write counts as disk full when the folder has (almost) no space left at the
moment of the failure, i.e. before the half-written files are cleaned up.

The reserve: a run writes events, status.json and checkpoints into its own folder. When that disk fills, the
`error` event and the final status need a few kilobytes themselves; `SpaceReserve` holds that much in a file
the engine created and frees it just before the run reports the failure. Torch-free.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from grpo_studio.engine.common.errors import StudioError

FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
FULL_TEXTS = ("no space left on device", "os error 28", "disk quota exceeded", "storagefull")
NEARLY_FULL_BYTES = 1 << 20  # below this much free space a failed write is taken as a full disk
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 256 << 10


class DiskFullError(StudioError):
    kind = "disk_full"

    def __init__(self, folder: str | Path, what: str = "writing") -> None:
        folder = Path(folder)
        super().__init__(f"the disk is full: {what} in {folder} failed ({free_text(folder)} free)",
                         "free some space on that disk (old runs' checkpoints are the usual culprits; "
                         "checkpoint_keep limits how many a run keeps), then continue with "
                         "`grpo-studio train --resume --run-dir RUN`")
        self.folder = folder


def free_bytes(folder: str | Path) -> int | None:
    """Free space on the disk holding `folder` (or its nearest existing parent); None if unknown."""
    path = Path(folder)
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def free_text(folder: str | Path) -> str:
    free = free_bytes(folder)
    if free is None:
        return "unknown space"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free} bytes"


def is_disk_full(error: BaseException, folder: str | Path | None = None) -> bool:
    """Whether `error` (or anything in its cause chain) means the disk is full. With `folder`, an error
    without errno or telltale text also counts when that disk has less than NEARLY_FULL_BYTES free."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFullError):
            return True
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in FULL_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    if folder is not None and isinstance(error, (OSError, RuntimeError)):
        free = free_bytes(folder)
        return free is not None and free < NEARLY_FULL_BYTES
    return False


def as_disk_full(error: BaseException, folder: str | Path, what: str = "writing") -> DiskFullError | None:
    """A DiskFullError for `error` when it means the disk is full, else None."""
    if isinstance(error, DiskFullError):
        return error
    return DiskFullError(folder, what) if is_disk_full(error, folder) else None


class SpaceReserve:
    """A file of RESERVE_BYTES in `folder`, freed (`release`) when the run must report a full disk."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / RESERVE_NAME

    def hold(self) -> SpaceReserve:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"\0" * RESERVE_BYTES)  # real blocks: a sparse file would reserve nothing
            finally:
                os.close(fd)
        except OSError:  # already (nearly) full: nothing to hold; the run will say so at its first write
            self.path.unlink(missing_ok=True)
        return self

    def release(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
