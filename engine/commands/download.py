"""`grpo-studio download ID [--dataset] [--revision R]`: fetch a model (or dataset) into the Hugging Face cache.

Only the files a training run reads are fetched, after checking their size against the free disk space.
Ctrl-C (or SIGTERM) stops the download; the files finished so far stay in the cache and are not fetched
again next time. `--plan` only asks the Hub what would be downloaded. `--json` prints one JSON object a
line (the same `phase` / `progress` events a run writes, then `{"type": "done", "path"}` or
`{"type": "error", ...}`): the app's Download button reads it.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

NAME = "download"
HELP = "download a model or dataset from the Hugging Face Hub into its cache (only the files training needs)"
ORDER = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo_id", metavar="ID", help="hub id, e.g. Qwen/Qwen2.5-0.5B-Instruct")
    parser.add_argument("--dataset", action="store_true", help="ID is a dataset (owner/name[:subset])")
    parser.add_argument("--revision", metavar="R", help="branch, tag or commit (default: main)")
    parser.add_argument("--plan", action="store_true", help="only show what would be downloaded, and the free space")
    parser.add_argument("--json", action="store_true", help="JSON lines for programs (the app reads these)")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.errors import ConfigError, StudioError
    from grpo_studio.engine.common.sources import resolve_name

    what = "dataset" if args.dataset else "model"
    try:
        source = resolve_name(args.repo_id, what)
        if source.kind != "hub":
            raise ConfigError(f"{args.repo_id} is a local path, not a hub id: there is nothing to download",
                              "give a hub id of the form owner/name")
        if args.plan:
            return _plan(source, args)
        return _download(source, args)
    except StudioError as error:
        if not args.json:
            raise
        _print({"type": "error", "kind": error.kind, "message": error.message, "hint": error.hint})
        return error.exit_code


def _plan(source, args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.sources import cached_snapshot, hub_cache_dir
    from grpo_studio.engine.hub.download import free_bytes, plan_download

    cached = cached_snapshot(source, args.revision)
    plan = None if cached is not None else plan_download(source, args.revision)
    free = free_bytes(hub_cache_dir())
    answer = {"type": "plan", "repo_id": source.repo_id, "what": source.what, "cached": cached is not None,
              "path": str(cached) if cached else None, "files": dict(plan.files) if plan else {},
              "total_bytes": plan.total_bytes if plan else 0, "missing_bytes": plan.missing_bytes if plan else 0,
              "free_bytes": free, "cache_dir": str(hub_cache_dir())}
    if args.json:
        _print(answer)
    elif cached is not None:
        print(f"{source.repo_id} is already in the cache: {cached}")
    elif plan is not None:  # not cached: planned
        print(f"{source.repo_id}: {len(plan.files)} files, {plan.total_bytes} bytes "
              f"({plan.missing_bytes} still to download); {free} bytes free in {hub_cache_dir()}")
    return 0


def _download(source, args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.event_types import check_fields
    from grpo_studio.engine.hub.download import DownloadCancelled
    from grpo_studio.engine.hub.fetch import fetch

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    printer = None
    if not args.json:
        from grpo_studio.engine.run.progress import ProgressPrinter

        printer = ProgressPrinter()

    def emit(type: str, **fields) -> dict:
        check_fields(type, fields)  # the run's event types, as EventLog.emit checks them
        event = {"type": type, **fields}
        if printer is None:
            _print(event)
        else:
            printer.handle(event)
        return event

    try:
        folder = fetch(source, emit, cancelled=stop.is_set)
    except DownloadCancelled as error:
        if printer is not None:
            printer.close()
        emit("log", level="info", message=error.message)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if printer is not None:
        printer.close()
        print(f"{source.repo_id} is in the cache: {folder}")
    else:
        _print({"type": "done", "repo_id": source.repo_id, "path": str(folder)})
    return 0


def _print(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
