"""Lay the source out as the installed package (`grpo_studio/`, `grpo_studio/engine/`, ...) for PyInstaller.

The repository maps top-level folders to `grpo_studio.*` through `[tool.setuptools] package-dir`, and the
development install is editable, which PyInstaller's module finder cannot follow (it looks for files on
sys.path, not through import hooks). So the spec copies each mapped folder to where an installed wheel would
put it and analyses that copy. The mapping is read from pyproject.toml, so it cannot drift.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def package_dirs(root: Path = ROOT) -> dict[str, str]:
    """{"grpo_studio": "app", "grpo_studio.engine": "engine", ...} from pyproject.toml."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the bundle is built with 3.11+, this keeps 3.10 importable
        import tomli as tomllib
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(project["tool"]["setuptools"]["package-dir"])


def stage_package(target: Path, root: Path = ROOT) -> Path:
    """Copy the mapped folders under `target` as an installed package tree; returns `target` (for pathex)."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    # Parents first, so a subpackage's copy lands inside its parent's.
    for package, folder in sorted(package_dirs(root).items(), key=lambda item: item[0].count(".")):
        shutil.copytree(root / folder, target.joinpath(*package.split(".")), ignore=SKIP, dirs_exist_ok=True)
    return target
