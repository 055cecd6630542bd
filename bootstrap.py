#!/usr/bin/env python3
"""Set up GRPO Studio in ./.venv (idempotent) and run the app or the tests. Needs only Python >= 3.11.

    python3 bootstrap.py run [ARGS]    the desktop app when there is a display, else the demo in the terminal
    python3 bootstrap.py test [ARGS]   the test suite (pytest ARGS)

torch goes in first: the CPU build (torch==2.13.0) on machines without an NVIDIA GPU, the default (CUDA)
build where `nvidia-smi` finds one; then the project in editable mode: `run` installs the app only, `test`
adds the test and benchmark extras (pytest, pytest-qt, TRL, Liger, ...). A stamp file remembers what was
installed, so a second call starts at once (`run` after `test` installs nothing; `test` after `run` adds
the extras). `test` also fetches, once, llama.cpp's convert scripts and vocab GGUFs (inside the
llama-cpp-python source distribution on PyPI, sha256-checked) into .ci/cache for the tests that need
them; offline, it says so and those tests skip with their reason.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".grpo-studio-setup"
CPU_TORCH = "torch==2.13.0"
# Debian/Ubuntu libraries Qt needs even offscreen; installed by `test` when run as root and missing.
QT_APT_PACKAGES = ["libegl1", "libgl1", "libxkbcommon0", "libxkbcommon-x11-0", "libfontconfig1", "libdbus-1-3",
                   "libglib2.0-0", "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0",
                   "libxcb-render-util0", "libxcb-shape0", "libxcb-xinerama0", "xvfb"]


def log(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> None:
    log(" ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    return subprocess.run([smi, "-L"], capture_output=True).returncode == 0


EXTRAS = "test,bench"  # pyproject's optional dependencies that `test` needs on top of the app


def wanted_setup(gpu: bool) -> str:
    """What the environment must match: this bootstrap and pyproject.toml, and the kind of torch."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + Path(__file__).read_bytes()).hexdigest()
    return f"{digest[:16]} gpu={gpu}"


def install_plan(stamp: str | None, setup: str, with_extras: bool) -> bool | None:
    """None when the stamp already covers what is wanted; else whether to install with the extras (kept
    when an earlier `test` had installed them, so a changed pyproject.toml does not drop them)."""
    recorded, _, extras = (stamp or "").strip().partition(" extras=")
    had_extras = extras == EXTRAS
    if recorded == setup and (had_extras or not with_extras):
        return None
    return with_extras or had_extras


def ensure_venv(with_extras: bool) -> None:
    gpu = has_nvidia_gpu()
    setup = wanted_setup(gpu)
    stamp = STAMP.read_text() if STAMP.exists() and PY.exists() else None
    extras = install_plan(stamp, setup, with_extras)
    if extras is None:
        return
    if not PY.exists():
        log(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check"]
    torch_ok = subprocess.run([PY, "-c", "import torch"], capture_output=True).returncode == 0
    if not torch_ok:
        # torch first: anything that depends on it would otherwise pull a multi-GB CUDA build.
        run(pip + (["torch"] if gpu else [CPU_TORCH]))
    run(pip + ["-e", f"{ROOT}[{EXTRAS}]" if extras else str(ROOT)])
    STAMP.write_text(setup + (f" extras={EXTRAS}" if extras else "") + "\n")
    log("environment ready")


def ensure_qt_libraries() -> None:
    """Qt loads libEGL & co. even offscreen; on a bare Debian/Ubuntu install them (root only)."""
    probe = subprocess.run([PY, "-c", "from PySide6 import QtGui, QtWidgets"], capture_output=True, text=True)
    if probe.returncode == 0:
        return
    if sys.platform.startswith("linux") and shutil.which("apt-get") and os.geteuid() == 0:
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *QT_APT_PACKAGES],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return
    sys.exit("Qt cannot load its system libraries:\n" + probe.stderr.strip()[-600:] +
             "\ninstall them with: sudo apt-get install " + " ".join(QT_APT_PACKAGES))


class Sdist(NamedTuple):
    """A source distribution on PyPI, pinned by its sha256 (PyPI never changes a released file)."""
    project: str
    version: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}.tar.gz"

    @property
    def top(self) -> str:  # the folder the archive unpacks to
        return self.filename.removesuffix(".tar.gz")


# llama.cpp's own convert_lora_to_gguf.py (the GGUF export is compared with it tensor by tensor) and its
# vocab-only GGUFs (real tokenizers for the tiny test models). Code and vocabularies only: no model weights.
LLAMA_CPP_SDIST = Sdist("llama-cpp-python", "0.3.36",
                        "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e", 76_589_250)
LLAMA_CPP_SUBDIR = "vendor/llama.cpp"
CACHE = ROOT / ".ci" / "cache"
PYPI_SIMPLE = "https://pypi.org/simple"


def sdist_url(sdist: Sdist, index: str) -> str:
    """The file's address from the index's JSON simple API (PEP 691)."""
    request = urllib.request.Request(f"{index}/{sdist.project}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        files = json.load(response)["files"]
    for entry in files:
        if entry["filename"] == sdist.filename:
            return urllib.parse.urljoin(f"{index}/{sdist.project}/", entry["url"])
    raise LookupError(f"{sdist.filename} is not on {index}")


def download_verified(url: str, sdist: Sdist, into: Path) -> Path:
    """Download to `into` with a progress line; the size and sha256 must be the pinned ones."""
    target, digest, done = into / sdist.filename, hashlib.sha256(), 0
    interactive = sys.stdout.isatty()
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if interactive:
                print(f"\r[bootstrap] {done >> 20} / {sdist.size >> 20} MiB", end="", flush=True)
    if interactive:
        print(flush=True)
    if done != sdist.size or digest.hexdigest() != sdist.sha256:
        raise ValueError(f"{sdist.filename} does not match its pinned size and sha256 (got {done} bytes, "
                         f"sha256 {digest.hexdigest()[:16]}...)")
    return target


def ensure_llama_cpp(cache: Path = CACHE, index: str = PYPI_SIMPLE,
                     sdist: Sdist = LLAMA_CPP_SDIST) -> Path | None:
    """llama.cpp's folder from the sdist, fetched once into `cache`; None (said in one line) when it cannot
    be fetched, so the tests that need it skip with their reason instead of the whole suite failing."""
    folder = cache / sdist.top / LLAMA_CPP_SUBDIR
    if folder.is_dir():
        return folder
    log(f"fetching llama.cpp's convert scripts and vocab files ({sdist.filename}, {sdist.size >> 20} MiB, "
        f"once) into {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(".partial-*"):  # left by a fetch that was killed
        shutil.rmtree(stale, ignore_errors=True)
    try:
        with tempfile.TemporaryDirectory(dir=cache, prefix=".partial-") as partial:
            archive = download_verified(sdist_url(sdist, index), sdist, Path(partial))
            members = f"{sdist.top}/{LLAMA_CPP_SUBDIR}/"
            with tarfile.open(archive) as tar:
                wanted = [m for m in tar.getmembers() if m.name.startswith(members)]
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(partial, members=wanted, **extra)
            # Renamed into place only when complete: an interrupted fetch leaves nothing that looks cached.
            (Path(partial) / sdist.top).rename(cache / sdist.top)
    except (OSError, ValueError, LookupError, tarfile.TarError) as error:
        log(f"could not fetch {sdist.filename} ({error}); the tests that need llama.cpp's files will skip")
        return None
    log(f"llama.cpp files ready: {folder}")
    return folder


def environment_for_tests(llama_cpp: Path | None) -> dict[str, str]:
    """pytest's environment: offscreen Qt, no Hub traffic, and llama.cpp's folder unless one is set."""
    # PYTHONSAFEPATH: the checkout's top-level kernels/ folder must never shadow Hugging Face's `kernels`
    # package (a transformers dependency), in pytest or in the engine processes the tests start.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", "PYTHONSAFEPATH": "1"}
    if llama_cpp is not None and not env.get("LLAMA_CPP_DIR"):
        env["LLAMA_CPP_DIR"] = str(llama_cpp)
    return env


def has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        sys.exit(f"GRPO Studio needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    action, rest = argv[0], argv[1:]
    ensure_venv(with_extras=action == "test")
    app = BIN / "grpo-studio"
    if action == "run":
        if rest or has_display():
            if not rest:
                ensure_qt_libraries()
            return subprocess.call([str(app), *rest])
        log("no display found: running the built-in demo in the terminal (`grpo-studio train --demo`)")
        return subprocess.call([str(app), "train", "--demo"])
    ensure_qt_libraries()
    env = environment_for_tests(None if os.environ.get("LLAMA_CPP_DIR") else ensure_llama_cpp())
    code = subprocess.call([str(PY), "-m", "pytest", *rest], cwd=ROOT, env=env)
    if code == 5:
        log("pytest collected no tests: that is a failure")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
