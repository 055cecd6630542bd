"""Downloads from the Hugging Face Hub into its standard cache, with a size check first and byte progress.

    plan = plan_download(source)                 # the files a run needs, their sizes, what is already cached
    check_disk(plan)                             # NotEnoughDisk (kind disk_full) before any byte is written
    folder = download(plan, on_progress=...)     # huggingface_hub's snapshot_download, observed via tqdm_class

Only the files a run reads are fetched (`sources.wanted_files`). Files finished by an earlier, interrupted
download are not fetched again (the cache keeps them; huggingface_hub skips them). Hub failures become
errors that say what happened and what to do: gated or private repos, unknown repos, an unreachable Hub.
Torch-free; huggingface_hub is imported inside the functions.
"""
from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from grpo_studio.engine.common.errors import ConfigError, DataError, StudioError
from grpo_studio.engine.common.hub_errors import DownloadError, NotEnoughDisk, translate_error
from grpo_studio.engine.common.sources import Source, hub_cache_dir, hub_endpoint, hub_offline, wanted_files

PROGRESS_EVERY_S = 0.5


class DownloadCancelled(StudioError):
    kind = "download"


@dataclass
class DownloadPlan:
    source: Source
    revision: str | None
    commit: str
    files: dict[str, int]  # path in the repo -> size in bytes
    cached: set[str] = field(default_factory=set)  # the files already complete in the cache

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    @property
    def missing_bytes(self) -> int:
        return sum(size for name, size in self.files.items() if name not in self.cached)


@dataclass
class Progress:
    """Bytes so far of one download (the already-cached files count as done), speed and ETA."""
    downloaded_bytes: int
    total_bytes: int
    bytes_per_s: float | None
    eta_s: float | None

    def as_fields(self) -> dict:
        return {"downloaded_bytes": self.downloaded_bytes, "total_bytes": self.total_bytes,
                "bytes_per_s": self.bytes_per_s, "eta_s": self.eta_s}


# ------------------------------------------------------------------------------------------------ planning
def plan_download(source: Source, revision: str | None = None) -> DownloadPlan:
    """Ask the Hub for the repo's file list with sizes; keep what a run needs; note what is cached."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    _refuse_offline(source)
    api = HfApi(endpoint=hub_endpoint())
    with _hub_errors(source):
        info = api.repo_info(source.hub_id, repo_type=source.repo_type, revision=revision, files_metadata=True)
    sizes = {s.rfilename: int(s.size or 0) for s in (getattr(info, "siblings", None) or [])}
    files = {name: sizes[name] for name in wanted_files(source, list(sizes))}
    if not files:
        raise _error_for(source, f"{source.repo_id} has no files a training run can use",
                         "a model needs config.json, a tokenizer and .safetensors weights; a dataset needs "
                         ".jsonl/.json/.csv/.parquet files")
    cache = hub_cache_dir()
    cached = {name for name in files if isinstance(try_to_load_from_cache(
        source.hub_id, name, cache_dir=cache, revision=info.sha, repo_type=source.repo_type), str)}
    return DownloadPlan(source, revision, info.sha or "", files, cached)


def free_bytes(path: Path) -> int:
    """Free space of the disk that holds `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def check_disk(plan: DownloadPlan) -> None:
    cache = hub_cache_dir()
    free = free_bytes(cache)
    need = plan.missing_bytes
    if need > free:
        raise NotEnoughDisk(f"not enough disk space to download {plan.source.repo_id}: it needs {_gb(need)} "
                            f"({need} bytes), and {cache} has {_gb(free)} ({free} bytes) free",
                            "free some space, or move the Hugging Face cache to a bigger disk (set HF_HOME "
                            "or HF_HUB_CACHE)")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


# ------------------------------------------------------------------------------------------------ download
def download(plan: DownloadPlan, on_progress: Callable[[Progress], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> Path:
    """Fetch the plan's missing files into the HF cache; returns the snapshot folder.

    `on_progress` is called at most every PROGRESS_EVERY_S (and once at the end); `cancelled()` is polled
    as bytes arrive: True stops with DownloadCancelled, keeping every finished file for the next start."""
    from huggingface_hub import snapshot_download

    source = plan.source
    meter = _Meter(plan, on_progress)
    with _hub_errors(source):
        folder = snapshot_download(source.hub_id, repo_type=source.repo_type, revision=plan.revision,
                                   allow_patterns=sorted(plan.files), cache_dir=hub_cache_dir(),
                                   endpoint=hub_endpoint(), tqdm_class=_bar_class(meter, cancelled or _never))
    meter.finish()
    return Path(folder)


def ensure_local(source: Source, revision: str | None = None, on_start: Callable[[DownloadPlan], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> Path:
    """The snapshot folder of a hub repo: from the cache when complete, else planned, checked and downloaded."""
    from grpo_studio.engine.common.sources import cached_snapshot

    folder = cached_snapshot(source, revision)
    if folder is not None:
        return folder
    plan = plan_download(source, revision)
    check_disk(plan)
    if on_start is not None:
        on_start(plan)
    return download(plan, on_progress, cancelled)


def _never() -> bool:
    return False


class _Meter:
    """Adds up bytes from huggingface_hub's worker threads; reports progress at a steady pace."""

    def __init__(self, plan: DownloadPlan, on_progress: Callable[[Progress], None] | None) -> None:
        self.plan, self.on_progress = plan, on_progress
        self.base = plan.total_bytes - plan.missing_bytes
        self.received = 0
        self.started = time.monotonic()
        self.last_report = 0.0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.received += n
            now = time.monotonic()
            due = now - self.last_report >= PROGRESS_EVERY_S
            if due:
                self.last_report = now
        if due:
            self.report()

    def progress(self) -> Progress:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        total = self.plan.total_bytes
        done = min(self.base + self.received, total)
        speed = self.received / elapsed if self.received else None
        eta = (total - done) / speed if speed else None
        return Progress(done, total, speed, eta)

    def report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def finish(self) -> None:
        with self.lock:
            self.received = max(self.received, self.plan.missing_bytes)
        progress = self.progress()
        progress.eta_s = 0.0
        if self.on_progress is not None:
            self.on_progress(progress)


def _bar_class(meter: _Meter, cancelled: Callable[[], bool]):
    """A tqdm class for snapshot_download's `tqdm_class` hook: silent, counts the bytes written to the cache."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class ByteBar(hf_tqdm):
        def __init__(self, *args, **kwargs):
            # snapshot_download names its bars; "huggingface_hub.snapshot_download" counts bytes on disk
            self.counts_bytes = kwargs.get("name") == "huggingface_hub.snapshot_download"
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if cancelled():
                raise DownloadCancelled("download cancelled; the files finished so far stay in the cache",
                                        "start it again to fetch the rest")
            if self.counts_bytes and n:
                meter.add(int(n))
            return super().update(n)

    return ByteBar


# ------------------------------------------------------------------------------------------------ errors
def _error_for(source: Source, message: str, hint: str) -> StudioError:
    return DataError(message, hint) if source.what == "dataset" else ConfigError(message, hint)


def _refuse_offline(source: Source) -> None:
    if hub_offline():
        raise DownloadError(f"{source.what} {source.repo_id} is not in the Hugging Face cache, and HF_HUB_OFFLINE "
                            "forbids downloading it", f"unset HF_HUB_OFFLINE to download it, or copy the "
                            f"{source.what} into {hub_cache_dir()} (or give a local path)")


@contextlib.contextmanager
def _hub_errors(source: Source) -> Iterator[None]:
    """Turns huggingface_hub and connection failures into errors with a hint; ours pass through."""
    try:
        yield
    except StudioError:
        raise
    except Exception as error:  # noqa: BLE001 - every failure of the Hub client gets a sentence
        raise translate_error(source, error) from error
