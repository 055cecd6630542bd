"""Linux desktop integration: the launcher entry, icons and AppStream metainfo in the user's XDG folders,
and the optional start-at-login entry. Files come from the packaged resources, so a wheel or a frozen
bundle installs the same thing as a checkout."""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path

DESKTOP_FILE = "grpo-studio.desktop"
METAINFO_FILE = "io.github.grpostudio.GRPOStudio.metainfo.xml"
ICON_NAME = "grpo-studio"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def xdg_data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def xdg_config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def launch_command() -> list[str]:
    """How the desktop should start this installation: the bundle's executable when frozen, else the
    `grpo-studio` script beside this Python (a venv's bin/ is not on the menu's PATH)."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    script = Path(sys.executable).with_name("grpo-studio")
    if script.exists():
        return [str(script)]
    found = shutil.which("grpo-studio")
    return [found] if found else [sys.executable, "-P", "-m", "grpo_studio"]


def _resource(*parts: str) -> Path:
    return Path(str(resources.files("grpo_studio.resources").joinpath(*parts)))


def desktop_entry(extra_args: str = "", autostart: bool = False) -> str:
    """The packaged .desktop text with Exec/TryExec pointing at this installation."""
    command = launch_command()
    exec_line = " ".join(shlex.quote(part) for part in command) + (f" {extra_args}" if extra_args else "")
    lines = []
    for line in _resource("desktop", DESKTOP_FILE).read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={exec_line}"
        elif line.startswith("TryExec="):
            line = f"TryExec={command[0]}"
        lines.append(line)
    if autostart:
        lines.append("X-GNOME-Autostart-enabled=true")
    return "\n".join(lines) + "\n"


def install(data_home: Path | None = None) -> list[Path]:
    """Write the menu entry, icons and metainfo; returns the files written."""
    data_home = data_home or xdg_data_home()
    written = []
    target = data_home / "applications" / DESKTOP_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(desktop_entry(), encoding="utf-8")
    written.append(target)
    icons = data_home / "icons" / "hicolor"
    svg = icons / "scalable" / "apps" / f"{ICON_NAME}.svg"
    svg.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_resource("icons", f"{ICON_NAME}.svg"), svg)
    written.append(svg)
    for size in PNG_SIZES:
        source = _resource("icons", "png", f"{ICON_NAME}-{size}.png")
        if source.exists():
            png = icons / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, png)
            written.append(png)
    metainfo = data_home / "metainfo" / METAINFO_FILE
    metainfo.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_resource("desktop", METAINFO_FILE), metainfo)
    written.append(metainfo)
    return written


def autostart_path(config_home: Path | None = None) -> Path:
    return (config_home or xdg_config_home()) / "autostart" / DESKTOP_FILE


def set_autostart(enabled: bool, config_home: Path | None = None) -> Path:
    """Start the app at login, hidden in the tray, re-attaching to (and resuming) interrupted runs."""
    path = autostart_path(config_home)
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(desktop_entry("gui --tray --resume-interrupted", autostart=True), encoding="utf-8")
    else:
        path.unlink(missing_ok=True)
    return path


def uninstall(data_home: Path | None = None, config_home: Path | None = None) -> list[Path]:
    data_home = data_home or xdg_data_home()
    candidates = [data_home / "applications" / DESKTOP_FILE, data_home / "metainfo" / METAINFO_FILE,
                  data_home / "icons" / "hicolor" / "scalable" / "apps" / f"{ICON_NAME}.svg",
                  autostart_path(config_home)]
    candidates += [data_home / "icons" / "hicolor" / f"{s}x{s}" / "apps" / f"{ICON_NAME}.png" for s in PNG_SIZES]
    removed = [p for p in candidates if p.exists()]
    for path in removed:
        path.unlink()
    return removed
