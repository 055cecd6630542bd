"""The release path: wheel, desktop files, frozen-bundle logic, doctor."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_desktop_file_validates():
    validator = shutil.which("desktop-file-validate")
    if not validator:
        pytest.skip("desktop-file-validate not installed (.ci/run installs desktop-file-utils)")
    result = subprocess.run([validator, str(ROOT / "packaging" / "grpo-studio.desktop")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_metainfo_validates():
    validator = shutil.which("appstreamcli")
    if not validator:
        pytest.skip("appstreamcli not installed (.ci/run installs appstream)")
    path = ROOT / "packaging" / "io.github.grpostudio.GRPOStudio.metainfo.xml"
    result = subprocess.run([validator, "validate", "--no-net", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_desktop_writes_a_valid_entry(tmp_path, monkeypatch):
    from grpo_studio.engine.commands import desktop_files

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    written = desktop_files.install()
    entry = tmp_path / "data" / "applications" / "grpo-studio.desktop"
    assert entry in written
    assert (tmp_path / "data" / "icons" / "hicolor" / "scalable" / "apps" / "grpo-studio.svg").exists()
    assert (tmp_path / "data" / "icons" / "hicolor" / "48x48" / "apps" / "grpo-studio.png").exists()
    exec_line = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))
    assert Path(exec_line.split("=", 1)[1].split()[0]).name in ("grpo-studio", Path(sys.executable).name)
    autostart = desktop_files.set_autostart(True)
    assert "gui --tray --resume-interrupted" in autostart.read_text()
    desktop_files.set_autostart(False)
    assert not autostart.exists()
    assert entry in desktop_files.uninstall()
    if shutil.which("desktop-file-validate"):
        desktop_files.install()
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout


def test_frozen_bundle_runs_engines_with_its_own_executable(monkeypatch):
    from grpo_studio.engine.commands import desktop_files
    from grpo_studio.engine.common import launcher

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/grpo-studio/grpo-studio")
    assert launcher.engine_command(["train", "x.yaml"]) == ["/opt/grpo-studio/grpo-studio", "train", "x.yaml"]
    assert desktop_files.launch_command() == ["/opt/grpo-studio/grpo-studio"]


def test_pyinstaller_spec_bundles_one_executable_for_app_and_engine():
    spec = (ROOT / "packaging" / "grpo-studio.spec").read_text()
    assert '["entry.py"]' in spec and 'name="grpo-studio"' in spec
    assert 'collect_submodules("grpo_studio")' in spec  # commands are discovered with pkgutil at run time
    assert 'collect_data_files("grpo_studio.resources"' in spec
    entry = (ROOT / "packaging" / "entry.py").read_text()
    assert "from grpo_studio.cli import main" in entry and "freeze_support()" in entry


def test_bundle_source_is_staged_as_the_installed_package(tmp_path):
    """PyInstaller cannot follow the editable install: the spec analyses a copy laid out as a wheel would."""
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        from stage_source import package_dirs, stage_package
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    staged = stage_package(tmp_path / "src")
    mapping = package_dirs()
    assert mapping["grpo_studio"] == "app" and mapping["grpo_studio.engine"] == "engine"
    for package, folder in mapping.items():
        where = staged.joinpath(*package.split("."))
        assert (where / "__init__.py").is_file(), package
        assert {p.name for p in (ROOT / folder).glob("*.py")} <= {p.name for p in where.glob("*.py")}
    assert (staged / "grpo_studio" / "resources" / "demo" / "rewards.py").is_file()  # .py data the demo needs
    assert not list(staged.rglob("__pycache__"))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import grpo_studio.cli, grpo_studio.engine.commands.train;"
            "from importlib.resources import files; import grpo_studio.resources as r;"
            "print(grpo_studio.cli.__file__); print(files(r) / 'demo' / 'task.jsonl')")
    out = subprocess.run([sys.executable, "-c", code, str(staged)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert all(line.startswith(str(staged)) for line in out.stdout.split())  # the copy, not the repository


def test_doctor_reports_without_a_gpu():
    result = subprocess.run([sys.executable, "-m", "grpo_studio", "doctor", "--json"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["python"] == sys.version.split()[0]
    assert facts["torch"]["torch"].startswith("2.")
    assert facts["ram"]["total"] > 0 and facts["disk_free"] > 0
    assert facts["hf_cache"]


def test_version_flag():
    from grpo_studio import __version__

    result = subprocess.run([sys.executable, "-m", "grpo_studio", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"grpo-studio {__version__}"


@pytest.mark.slow
def test_wheel_installs_into_a_clean_venv(tmp_path):
    """Build the wheel, install it (no deps) into a fresh venv that sees the dev venv's packages through a
    plain path entry (not the editable finder), and run its entry point and packaged resources."""
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(dist.glob("grpo_studio-*.whl"))
    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], check=True)
    python = venv_dir / "bin" / "python"
    site = next((venv_dir / "lib").glob("python3*/site-packages"))
    deps = [p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir()]
    (site / "dev_deps.pth").write_text("\n".join(map(str, deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    version = subprocess.run([str(venv_dir / "bin" / "grpo-studio"), "--version"], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    probe = ("import grpo_studio, importlib.resources as r; print(grpo_studio.__file__); "
             "print(r.files('grpo_studio.resources').joinpath('desktop', 'grpo-studio.desktop').is_file()); "
             "print(r.files('grpo_studio.resources').joinpath('demo', 'model', 'config.json').is_file())")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    lines = out.stdout.split()
    assert str(site) in lines[0], out.stdout + out.stderr  # the wheel's copy, not the checkout
    assert lines[1:] == ["True", "True"]
