"""Static checks over the product code (app/, engine/, gui/, kernels/), part of the test suite so CI and
`python3 bootstrap.py test` run them: ruff (lint and import order) and mypy, both configured in pyproject.toml.

mypy cannot follow the editable install's import hook (grpo_studio is mapped from four folders by
package-dir), so it checks a tree of links laid out as the installed package (grpo_studio/ = app/, with
engine/, gui/, kernels/ and resources/ inside) and its findings are reported under the source paths."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("app", "engine", "gui", "kernels")
SUBPACKAGES = ("engine", "gui", "kernels", "resources")  # grpo_studio.<name> = <name>/; grpo_studio = app/
CACHE = ROOT / ".mypy_cache"  # ignored by git; keeps a second run to a few seconds


def tool(name: str) -> str:
    """The tool installed beside this interpreter (the venv's), else the one on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `python3 bootstrap.py test` installs the test extra, or "
                    f"`{sys.executable} -m pip install -e '.[test]'`")
    return found


def link(target: Path, at: Path) -> None:
    """A symlink, or a copy where the system refuses links (Windows without developer mode)."""
    try:
        at.symlink_to(target, target_is_directory=target.is_dir())
    except OSError:
        (shutil.copytree if target.is_dir() else shutil.copy2)(target, at)


def package_tree(root: Path) -> Path:
    """root/grpo_studio laid out as the installed package, rebuilt each time so new modules are seen."""
    package = root / "grpo_studio"
    shutil.rmtree(root, ignore_errors=True)
    package.mkdir(parents=True)
    for path in sorted((ROOT / "app").iterdir()):
        if path.name != "__pycache__":
            link(path, package / path.name)
    for name in SUBPACKAGES:
        link(ROOT / name, package / name)
    return root


def source_paths(output: str) -> str:
    """mypy's output with the tree's paths (grpo_studio/engine/x.py) turned back into the source's (engine/x.py)."""
    lines = []
    for line in output.splitlines():
        if line.startswith("grpo_studio/"):
            rest = line.removeprefix("grpo_studio/")
            line = rest if rest.split("/", 1)[0] in SUBPACKAGES else "app/" + rest
        lines.append(line)
    return "\n".join(lines)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_ruff_finds_nothing():
    result = run([tool("ruff"), "check", "--no-cache", *PRODUCT], ROOT)
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"


@pytest.mark.slow  # the first run checks every module (~30 s); later runs reuse .mypy_cache
def test_mypy_finds_nothing():
    tree = package_tree(CACHE / "package-tree")
    result = run([tool("mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(CACHE),
                  "-p", "grpo_studio"], tree)
    assert result.returncode == 0, f"mypy failed:\n{source_paths(result.stdout)}{result.stderr}"
    checked = re.search(r"no issues found in (\d+) source files", result.stdout)
    modules = [p for name in (*PRODUCT, "resources") for p in (ROOT / name).rglob("*.py")]
    assert checked and int(checked[1]) >= len(modules), result.stdout  # every module went through the tree
