"""A small tmpfs for tests that need a real full (or read-only) disk; root only (CI containers run as root)."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "8m", readonly: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of `size` at `path` for the block; skips the test where mounting is not possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Write a filler file in `folder` until its disk has about `leave` bytes free (0: until ENOSPC)."""
    import shutil

    filler = folder / f"filler-{len(list(folder.glob('filler-*')))}"
    chunk = b"\0" * (64 << 10)
    with open(filler, "wb", buffering=0) as handle:
        while True:
            free = shutil.disk_usage(folder).free
            if free <= leave:
                break
            try:
                handle.write(chunk[: max(1, min(len(chunk), free - leave))])
            except OSError:
                break
    return filler
