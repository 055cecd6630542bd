"""The system tray: the app icon, a tooltip with each active run's progress and reward, a menu rebuilt each
time it opens (show the window, pause/resume and stop each run, quit the GUI — never the runs), and desktop
notifications on finish, error and checkpoint. The menu only forwards clicks; the work is elsewhere."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from grpo_studio.gui.engine_bridge import EngineBridge
from grpo_studio.gui.settings import AppSettings
from grpo_studio.gui.widgets import fmt_number


def run_line(run) -> str:
    progress = f"step {run.step or 0}/{run.total_steps}" if run.total_steps else f"step {run.step or 0}"
    if run.total_steps:
        progress += f" ({100 * (run.step or 0) / max(run.total_steps, 1):.0f} %)"
    reward = f", reward {fmt_number(run.reward, 2)}" if run.reward is not None else ""
    paused = " – paused" if run.state == "paused" else ""
    return f"{run.name}: {progress}{reward}{paused}"


class Tray(QObject):
    show_window_action = Signal()
    open_run_action = Signal(str)
    quit_action = Signal()

    def __init__(self, bridge: EngineBridge, settings: AppSettings, icon: QIcon, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.settings = settings
        self.runs: list = []
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.icon: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon = QSystemTrayIcon(icon, self)
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._activated)
            self.icon.show()
        self.rebuild_menu()
        self.update_runs([])

    def available(self) -> bool:
        return self.icon is not None

    def update_runs(self, runs: list) -> None:
        self.runs = list(runs)
        self.tooltip = self.tooltip_text()
        if self.icon is not None:
            self.icon.setToolTip(self.tooltip)

    def tooltip_text(self) -> str:
        if not self.runs:
            return "GRPO Studio — no runs active"
        return "GRPO Studio\n" + "\n".join(run_line(r) for r in self.runs)

    def rebuild_menu(self) -> QMenu:
        menu = self.menu
        menu.clear()
        show = menu.addAction("Show GRPO Studio")
        show.triggered.connect(self.show_window_action)
        menu.addSeparator()
        if not self.runs:
            idle = menu.addAction("No runs active")
            idle.setEnabled(False)
        for run in self.runs:
            sub = menu.addMenu(run_line(run))
            path = str(run.path)
            open_action = sub.addAction("Open in Monitor")
            open_action.triggered.connect(lambda _=False, p=path: self.open_run_action.emit(p))
            paused = run.state == "paused"
            toggle = sub.addAction("Resume" if paused else "Pause")
            toggle.triggered.connect(lambda _=False, p=path, c="resume" if paused else "pause": self.command(p, c))
            save = sub.addAction("Save checkpoint now")
            save.triggered.connect(lambda _=False, p=path: self.command(p, "save_now"))
            stop = sub.addAction("Stop (saves a checkpoint)")
            stop.triggered.connect(lambda _=False, p=path: self.command(p, "stop"))
        menu.addSeparator()
        quit_action = menu.addAction("Quit GRPO Studio (runs keep going)" if self.runs else "Quit GRPO Studio")
        quit_action.triggered.connect(self.quit_action)
        return menu

    def command(self, run_dir: str, cmd: str) -> None:
        self.bridge.send(run_dir, cmd)

    def actions_for(self, run_dir: str | Path) -> dict[str, QAction]:
        """The menu's actions for one run by label (for tests and keyboard users of the menu)."""
        self.rebuild_menu()
        for action in self.menu.actions():
            sub = action.menu()
            if isinstance(sub, QMenu) and action.text().startswith(Path(run_dir).name):
                return {a.text(): a for a in sub.actions()}
        return {}

    def notify(self, kind: str, title: str, text: str) -> bool:
        """A desktop notification, if the user wants them and the desktop shows them."""
        if not self.settings.notifications or self.icon is None or not self.icon.supportsMessages():
            return False
        icon = {"error": QSystemTrayIcon.MessageIcon.Critical, "alarm": QSystemTrayIcon.MessageIcon.Warning}.get(
            kind, QSystemTrayIcon.MessageIcon.Information)
        self.icon.showMessage(title, text, icon, 8000)
        return True

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.show_window_action.emit()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
