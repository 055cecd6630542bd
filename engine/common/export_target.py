"""Where an export may write: an existing target is replaced only when the user said so (`--force`, or the
Export page's "Replace?" question), never when it is not what an export writes (a symlink, a device, a folder
for a file), and a merged-model folder only when GRPO Studio wrote it (its marker file says so), so a
folder with the user's own files — or the base model itself — is never emptied.

Torch-free: the GUI asks the same questions before it starts an export.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from grpo_studio.engine.common.errors import ExportError

# Written into every merged-model folder; lists what the export wrote.
MERGED_MARKER = ".grpo-studio-merged.json"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def existing_targets(files: list[Path], folders: list[Path]) -> list[Path]:
    """The targets that already exist (what the GUI asks about before passing --force)."""
    found = [path for path in files if _lstat(Path(path).expanduser()) is not None]
    return found + [path for path in folders
                    if _lstat(Path(path).expanduser()) is not None and not _is_empty_dir(Path(path).expanduser())]


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def check_file_target(path: Path, force: bool) -> None:
    """Raise ExportError unless the file `path` may be written: new, or a regular file and `force`."""
    info = _lstat(path)
    if info is None:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ExportError(f"{path} is a symbolic link; an export does not replace links",
                          "give the path of a new file")
    if stat.S_ISDIR(info.st_mode):
        raise ExportError(f"{path} is a folder", "give a file name ending in .gguf")
    if not stat.S_ISREG(info.st_mode):
        raise ExportError(f"{path} is not a regular file (a device, pipe or socket); an export never replaces it",
                          "give the path of a new file")
    if not force:
        raise ExportError(f"{path} already exists", "choose another file name, or pass --force to replace it")


def check_merged_target(out_dir: Path, force: bool, keep: list[Path]) -> None:
    """Raise ExportError unless the merged model may be written at out_dir: a new or empty folder, or (with
    `force`) an earlier merged model GRPO Studio wrote. Never a folder that holds or is inside one of `keep`
    (the base model, the adapter)."""
    real = Path(os.path.realpath(out_dir))
    for folder in keep:
        protected = Path(os.path.realpath(folder))
        if real == protected or protected.is_relative_to(real) or real.is_relative_to(protected):
            raise ExportError(f"{out_dir} holds or is inside {folder}, which the export reads",
                              "give a new folder for the merged model")
    info = _lstat(out_dir)
    if info is None:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ExportError(f"{out_dir} is a symbolic link; an export does not replace links",
                          "give a new folder for the merged model")
    if not stat.S_ISDIR(info.st_mode):
        raise ExportError(f"{out_dir} is not a folder", "give a folder for the merged model")
    if not any(out_dir.iterdir()):
        return
    if not (out_dir / MERGED_MARKER).is_file():
        raise ExportError(f"{out_dir} is not empty and was not written by a GRPO Studio export",
                          "give a new or empty folder; GRPO Studio never deletes files it did not write")
    if not force:
        raise ExportError(f"{out_dir} already holds a merged model",
                          "choose another folder, or pass --force to replace it")
    written = set(_marker_files(out_dir))
    others = sorted(p.name for p in out_dir.iterdir() if p.name not in written and p.name != MERGED_MARKER)
    if others:
        raise ExportError(f"{out_dir} holds files a GRPO Studio export did not write: {', '.join(others[:5])}",
                          "move them away or give a new folder; GRPO Studio never deletes files it did not write")


def _marker_files(out_dir: Path) -> list[str]:
    try:
        files = json.loads((out_dir / MERGED_MARKER).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in files if isinstance(name, str)] if isinstance(files, list) else []


def write_merged_marker(folder: Path) -> None:
    """Record the files of a freshly written merged-model folder (before it is moved into place)."""
    names = sorted(p.name for p in folder.iterdir())
    (folder / MERGED_MARKER).write_text(json.dumps({"files": names}), encoding="utf-8")
