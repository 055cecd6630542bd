"""Build the one-folder PyInstaller bundle and smoke-test it (`--version`, `train --demo --steps 2`).

Slow (minutes) and large, so it is not part of the default test command:
    .venv/bin/python scripts/build_bundle.py [--skip-build]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
EXECUTABLE = DIST / "grpo-studio" / "grpo-studio"


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-build", action="store_true", help="only smoke-test an existing bundle")
    args = parser.parse_args()
    if not args.skip_build:
        run([sys.executable, "-m", "pip", "install", "-q", "pyinstaller>=6.10"])
        run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", DIST, "--workpath",
             ROOT / "build" / "pyinstaller", "grpo-studio.spec"], cwd=ROOT / "packaging")
    version = run([EXECUTABLE, "--version"], capture_output=True, text=True).stdout.strip()
    print("bundle version:", version)
    with tempfile.TemporaryDirectory() as tmp:
        run([EXECUTABLE, "train", "--demo", "--steps", "2", "--run-dir", Path(tmp) / "run", "--quiet"])
        adapter = Path(tmp) / "run" / "adapter" / "adapter_model.safetensors"
        if not adapter.exists():
            print("bundle smoke test failed: no adapter written", file=sys.stderr)
            return 1
    print("bundle smoke test passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
