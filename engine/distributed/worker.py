"""A training rank other than rank 0 under torchrun: it trains its share of every step but owns nothing in
the run folder (rank 0 writes events, status, checkpoints and the adapter, and serves the socket).

When it fails it leaves its error in `rank-errors/rank-R.json` before exiting, so rank 0 (whose next
collective then fails) reports the real cause in the run's `error` event instead of a broken connection.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from grpo_studio.engine.common.errors import EXIT_CODES, StudioError
from grpo_studio.engine.common.runs import RunPaths, atomic_write_text
from grpo_studio.engine.distributed.control import SharedControl
from grpo_studio.engine.train import ranks
from grpo_studio.engine.train.control import Control

ERRORS_DIR = "rank-errors"


def run_worker(config, run_dir: Path, *, resume: bool = False) -> int:
    import torch

    from grpo_studio.engine.train.loop import Trainer

    paths = RunPaths(Path(run_dir))
    trainer = Trainer(config, paths, lambda *args, **fields: None, SharedControl(Control()))
    try:
        trainer.setup(resume=resume)
        trainer.train()
        return 0
    except StudioError as error:
        return _record(paths, error.kind, error.message, error.hint, error.exit_code)
    except torch.OutOfMemoryError as error:
        return _record(paths, "oom", f"out of GPU memory at step {trainer.step}: {str(error)[:200]}", "",
                       EXIT_CODES["oom"])
    except Exception as error:  # noqa: BLE001 - rank 0 reports it; the traceback goes to this rank's stderr
        traceback.print_exc(file=sys.stderr)
        return _record(paths, "crash", f"{type(error).__name__}: {error}", "the traceback is in the torchrun "
                       "output of this rank; please report it", EXIT_CODES["crash"])
    finally:
        ranks.shutdown()


def _record(paths: RunPaths, kind: str, message: str, hint: str, code: int) -> int:
    rank = ranks.rank()
    folder = paths.root / ERRORS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"rank-{rank}.json", json.dumps({"rank": rank, "kind": kind, "message": message,
                                                                "hint": hint, "code": code}))
    return code


def peer_failure(paths: RunPaths) -> dict | None:
    """The first error another rank recorded in this run, if any (for rank 0's `error` event)."""
    folder = paths.root / ERRORS_DIR
    for path in sorted(folder.glob("rank-*.json")) if folder.is_dir() else []:
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found["message"] = f"rank {found.get('rank')}: {found.get('message')}"
        return found
    return None


def clear_failures(paths: RunPaths) -> None:
    """Forget errors of an earlier attempt (a resume starts clean)."""
    folder = paths.root / ERRORS_DIR
    for path in folder.glob("rank-*.json") if folder.is_dir() else []:
        path.unlink(missing_ok=True)
