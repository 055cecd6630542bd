"""Starting a run in a folder without destroying what is there. Torch-free.

A new run (no --resume) goes into a fresh folder. An existing folder is accepted only when it holds nothing
but what the app or the launcher put there before the engine started (the run's own config.yaml, status.json,
engine.log, the lock). Anything else — an earlier run's events, checkpoints or adapter, or files GRPO Studio
never wrote — refuses the start unless `--overwrite` is given, and `--overwrite` deletes only the entries
the engine itself creates (ENGINE_ENTRIES), never other files.

Run folders are created 0700 and the engine's files 0600: prompts, completions and rewards are private.
"""
from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.runs import RunPaths

# Everything the engine (or the launcher, for engine.log) writes into a run folder.
ENGINE_ENTRIES = ("config.yaml", "status.json", "secret", "events.jsonl", "engine.log", "engine.lock",
                  "checkpoints", "adapter", ".adapter.tmp", ".adapter.old", ".space-reserve", "exports")
# What may already be there when a fresh run starts (the GUI writes config.yaml, the launcher engine.log
# and status.json's pid before the engine runs).
STARTING_ENTRIES = ("config.yaml", "status.json", "engine.log", "engine.lock")


def make_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if missing; the folder itself (when created here) is 0700."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
    return path


def prepare_new_run(run_dir: Path, config_file: Path | None, overwrite: bool) -> list[str]:
    """Check (and with `overwrite` clear) `run_dir` for a new run; returns notes on what was done."""
    if not run_dir.exists():
        make_private_dir(run_dir)
        return []
    if not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder", "give a folder for the run")
    entries = sorted(p.name for p in run_dir.iterdir())
    foreign = [name for name in entries if not _may_precede_start(run_dir, name, config_file)]
    if not foreign:
        return []
    if not overwrite:
        shown = ", ".join(foreign[:6]) + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
        earlier = _holds_earlier_run(run_dir)
        raise ConfigError(f"{run_dir} is not empty ({shown})" + (": it holds an earlier run" if earlier else ""),
                          "continue that run with "
                          f"`grpo-studio train --resume --run-dir {shlex.quote(str(run_dir))}`, use "
                          "another --run-dir, or add --overwrite to replace the earlier run (only files GRPO "
                          "Studio writes are deleted)" if earlier else "use an empty or new folder for --run-dir")
    earlier = _holds_earlier_run(run_dir)
    if "config.yaml" in foreign and not earlier:  # the engine writes config.yaml: it would replace theirs
        raise ConfigError(f"{run_dir} has a config.yaml that is not a GRPO Studio run's",
                          "use an empty or new folder for --run-dir (even --overwrite never replaces files "
                          "GRPO Studio did not write)")
    removed = [name for name in entries if earlier and name in ENGINE_ENTRIES
               and not _is_config_file(run_dir, name, config_file)]
    for name in removed:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    kept = [name for name in foreign if name not in removed]
    notes = [f"--overwrite: removed the earlier run's {', '.join(removed)}"] if removed else []
    if kept:
        notes.append(f"--overwrite kept files GRPO Studio did not write: {', '.join(kept)}")
    return notes


def _holds_earlier_run(run_dir: Path) -> bool:
    paths = RunPaths(run_dir)
    from grpo_studio.engine.common.runs import read_status

    return (paths.events.is_file() or paths.checkpoints.is_dir() or paths.adapter.is_dir()
            or read_status(paths).get("state") not in (None, "starting"))


def _may_precede_start(run_dir: Path, name: str, config_file: Path | None) -> bool:
    if name not in STARTING_ENTRIES:
        return False
    if name == "config.yaml":  # the app saves the run's config there and trains that very file
        return _is_config_file(run_dir, name, config_file)
    if name == "status.json":
        from grpo_studio.engine.common.runs import read_status

        return read_status(RunPaths(run_dir)).get("state") in (None, "starting")
    return True


def _is_config_file(run_dir: Path, name: str, config_file: Path | None) -> bool:
    if name != "config.yaml" or config_file is None:
        return False
    try:
        return os.path.samefile(run_dir / name, config_file)
    except OSError:
        return False


def secure_run_files(paths: RunPaths) -> None:
    """0600 for the engine's files that an older version (or the launcher) may have left 0644."""
    for path in (paths.config, paths.status, paths.events, paths.log, paths.lock):
        try:
            if path.is_file():
                os.chmod(path, 0o600)
        except OSError:
            pass
