"""`grpo-studio` / `grpo-studio gui`: start the desktop app (or bring the open one forward).

Start-up stays light: Qt, pyqtgraph and the torch-free engine modules only; the GPU probe, the Hugging Face
cache scan and the run watcher start after the window is on screen.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from PySide6.QtCore import QLocale, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from grpo_studio import __version__
from grpo_studio.engine.common.launcher import start_detached
from grpo_studio.gui import theme
from grpo_studio.gui.main_window import MainWindow
from grpo_studio.gui.qt_check import binding_problem
from grpo_studio.gui.settings import AppSettings
from grpo_studio.gui.single_instance import InstanceServer, ask_running_instance
from grpo_studio.gui.wheel_guard import install_wheel_guard
from grpo_studio.gui.widgets import icon_path

PROBE_ENV = "GRPO_STUDIO_STARTUP_PROBE"  # tests: print start-up facts as JSON once the window shows, then quit


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="grpo-studio gui", description="Open the GRPO Studio desktop app.")
    parser.add_argument("--page", choices=["new", "monitor", "runs", "export", "try"],
                        help="the page to open on")
    parser.add_argument("--open-run", metavar="RUN_DIR", help="open this run in the Monitor")
    parser.add_argument("--tray", action="store_true",
                        help="start hidden in the system tray (used by the start-at-login entry)")
    parser.add_argument("--resume-interrupted", action="store_true",
                        help="resume runs that were cut off (e.g. by a shutdown) from their last checkpoint")
    parser.add_argument("--version", action="version", version=f"grpo-studio {__version__}")
    return parser.parse_args(argv)


def resume_interrupted_runs(runs_dir) -> list:
    """Start a detached `train --resume` for every crashed run; returns the runs resumed."""
    from grpo_studio.engine.common.runs import list_runs

    crashed = [s for s in list_runs(runs_dir) if s.state == "crashed"]
    for summary in crashed:
        start_detached(["train", "--resume", "--run-dir", str(summary.path)], summary.path)
    return crashed


def main(argv: list[str] | None = None) -> int:
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    problem = binding_problem()
    if problem:  # it would abort mid-run anyway; say why and how to fix it instead
        print(f"error: {problem}", file=sys.stderr)
        return 2
    existing = QApplication.instance()  # tests make one first
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0] if sys.argv else "grpo-studio"])
    # The UI is English: numbers too (1,387.5 — never "1.387,5" from a German system), spin boxes included.
    QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    app.setApplicationName("GRPO Studio")
    app.setOrganizationName("grpo-studio")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("grpo-studio")
    app.setQuitOnLastWindowClosed(False)  # the tray keeps the app alive while runs are active
    install_wheel_guard(app)
    if ask_running_instance():
        print("GRPO Studio is already open: bringing its window forward.")
        return 0
    server = InstanceServer(parent=app)
    server.listen()
    settings = AppSettings()
    theme.apply(app, settings.theme)
    icon = QIcon(icon_path())
    app.setWindowIcon(icon)
    window = MainWindow(settings, icon)
    server.show_event.connect(window.bring_forward)
    app.aboutToQuit.connect(window.shutdown)  # however the app ends, the followers stop before Qt goes
    pages = {"new": 0, "monitor": 1, "runs": 2, "export": 3, "try": 4}
    if args.page:
        window.show_page(pages[args.page])
    if args.open_run:
        window.open_run(args.open_run)
    if args.resume_interrupted:
        for summary in resume_interrupted_runs(settings.runs_dir):
            window.statusBar().showMessage(f"Resumed {summary.name} from its last checkpoint", 8000)
    if not (args.tray and window.tray.available()):
        window.show()
    QTimer.singleShot(0, window.start_background)
    if os.environ.get(PROBE_ENV):
        QTimer.singleShot(0, lambda: _probe(window))
    code = app.exec()
    server.close()
    return code


def _probe(window: MainWindow) -> None:
    """Report how long the window took from process start and which heavy modules got imported; then quit."""
    try:
        import psutil
        since_start = time.time() - psutil.Process().create_time()
    except Exception:  # noqa: BLE001
        since_start = None
    heavy = sorted(m for m in ("torch", "transformers", "triton", "peft", "bitsandbytes", "accelerate")
                   if m in sys.modules)
    print(json.dumps({"visible": window.isVisible(), "seconds_since_process_start": since_start,
                      "heavy_modules": heavy}), flush=True)
    window.quit_action()
