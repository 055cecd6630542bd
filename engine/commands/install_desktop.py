"""`grpo-studio install-desktop`: add GRPO Studio to the desktop's app menu (Linux, per user)."""
from __future__ import annotations

import argparse
import sys

NAME = "install-desktop"
HELP = "add GRPO Studio to the app menu (icons, launcher, metainfo); optionally start it at login"
ORDER = 95


def add_arguments(parser: argparse.ArgumentParser) -> None:
    autostart = parser.add_mutually_exclusive_group()
    autostart.add_argument("--autostart", action="store_true",
                           help="also start at login, in the tray, resuming interrupted runs")
    autostart.add_argument("--no-autostart", action="store_true", help="remove the start-at-login entry")
    parser.add_argument("--uninstall", action="store_true", help="remove everything this command installed")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.commands import desktop_files

    if not sys.platform.startswith("linux"):
        print("install-desktop is for Linux desktops; on this system start `grpo-studio` directly.")
        return 1
    if args.uninstall:
        removed = desktop_files.uninstall()
        print("\n".join(f"removed {p}" for p in removed) or "nothing to remove")
        return 0
    for path in desktop_files.install():
        print(f"wrote {path}")
    if args.autostart or args.no_autostart:
        path = desktop_files.set_autostart(args.autostart)
        print(f"{'wrote' if args.autostart else 'removed'} {path}")
    print("GRPO Studio is in your app menu (you may need to log out and in on some desktops).")
    return 0
