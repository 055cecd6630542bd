"""The main window: a sidebar of pages (New run, Monitor, Runs, Export, Try), the status bar, menus with
keyboard shortcuts, and the wiring between pages, the engine bridge, the run watcher and the tray.
Closing the window while runs are active hides it to the tray; quitting never stops a run."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from grpo_studio import __version__
from grpo_studio.engine.common import runs as run_store
from grpo_studio.engine.common.launcher import start_detached
from grpo_studio.gui import theme
from grpo_studio.gui.active_runs import ActiveRuns
from grpo_studio.gui.engine_bridge import EngineBridge
from grpo_studio.gui.export_page import ExportPage
from grpo_studio.gui.monitor_page import MonitorPage
from grpo_studio.gui.new_run_page import NewRunPage
from grpo_studio.gui.runs_page import RunsPage
from grpo_studio.gui.settings import AppSettings
from grpo_studio.gui.settings_dialog import SettingsDialog
from grpo_studio.gui.tray import Tray, run_line
from grpo_studio.gui.try_page import TryPage
from grpo_studio.gui.widgets import fmt_bytes, icon_path

PAGES = ("New run", "Monitor", "Runs", "Export", "Try")
STATUS_MS = 6000
PREFERRED_SIZE = QSize(1280, 860)  # the first window where the screen has room; else the screen's available area


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings, icon: QIcon, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.quitting = False
        self.setWindowTitle("GRPO Studio")
        self.setWindowIcon(icon)
        self.setMinimumSize(QSize(980, 640))
        self._fit_to_screen()
        self.bridge = EngineBridge(self)
        self.active = ActiveRuns(lambda: self.settings.runs_dir, self, lambda: self.settings.plateau_steps)
        self.tray = Tray(self.bridge, settings, icon, self)

        self.new_run = NewRunPage(settings)
        self.monitor = MonitorPage(self.bridge)
        self.runs = RunsPage()
        self.export = ExportPage()
        self.try_page = TryPage()
        self.pages = [self.new_run, self.monitor, self.runs, self.export, self.try_page]
        self._build(icon)
        self._build_menus()
        self._wire()
        self._restore()

    # ------------------------------------------------------------------ layout
    def _build(self, icon: QIcon) -> None:
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        side = QWidget()
        side.setFixedWidth(188)
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        brand = QLabel()
        brand.setObjectName("Brand")
        brand.setText(f"<img src='{icon_path()}' width='22' height='22' style='vertical-align: middle'>"
                      "&nbsp; GRPO Studio")
        side_layout.addWidget(brand)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("Sidebar")
        self.sidebar.setAccessibleName("Pages")
        for i, name in enumerate(PAGES):
            item = QListWidgetItem(name)
            item.setToolTip(f"{name} (Ctrl+{i + 1})")
            item.setSizeHint(QSize(160, 38))
            self.sidebar.addItem(item)
        side_layout.addWidget(self.sidebar, 1)
        row.addWidget(side)
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.sidebar.currentRowChanged.connect(self._page_changed)
        self.gpu_label = QLabel("")
        self.runs_label = QLabel("")
        for widget in (self.runs_label, self.gpu_label):
            widget.setContentsMargins(8, 0, 8, 0)
            self.statusBar().addPermanentWidget(widget)
        self.statusBar().showMessage("Ready", STATUS_MS)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&New run", "Ctrl+N", lambda: self.show_page(0))
        self._action(file_menu, "&Open config…", "Ctrl+O", self._open_config)
        file_menu.addSeparator()
        self._action(file_menu, "&Settings…", "Ctrl+,", self.settings_action)
        file_menu.addSeparator()
        self._action(file_menu, "&Close window", "Ctrl+W", self.close)
        self._action(file_menu, "&Quit (runs keep going)", "Ctrl+Q", self.quit_action)
        view_menu = bar.addMenu("&View")
        for i, name in enumerate(PAGES):
            self._action(view_menu, name, f"Ctrl+{i + 1}", lambda _=False, i=i: self.show_page(i))
        view_menu.addSeparator()
        self._action(view_menu, "&Refresh runs", "F5", self.runs.refresh)
        run_menu = bar.addMenu("&Run")
        self._action(run_menu, "&Start training", None, self.new_run.start_action)
        # The run open in the Monitor, from any page (a Monitor-only shortcut died with the focus on another page).
        self._action(run_menu, "&Pause / resume", "Ctrl+P", self.monitor.pause_action)
        self._action(run_menu, "Save &checkpoint now", "Ctrl+S", lambda: self.monitor.send_command("save_now"))
        self._action(run_menu, "S&top (saves)", "Ctrl+.", lambda: self.monitor.send_command("stop"))
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&About GRPO Studio", None, self._about)

    def _action(self, menu, text: str, keys: str | None, slot) -> QAction:
        action = menu.addAction(text)
        if keys:
            action.setShortcut(QKeySequence(keys))
        action.triggered.connect(slot)
        return action

    def _wire(self) -> None:
        for page in (self.new_run, self.monitor, self.runs, self.export, self.try_page):
            page.status_event.connect(self.show_status)
        self.new_run.run_started_event.connect(self.run_started)
        self.runs.open_run_action.connect(self.open_run)
        self.runs.resume_run_action.connect(self.resume_run)
        self.runs.new_run_action.connect(lambda: self.show_page(0))
        self.monitor.show_runs_action.connect(lambda: self.show_page(2))
        self.export.show_runs_action.connect(lambda: self.show_page(2))
        self.try_page.show_runs_action.connect(lambda: self.show_page(2))
        self.bridge.command_event.connect(self._command_done)
        self.active.runs_event.connect(self._active_runs)
        self.active.notice_event.connect(self._notice)
        self.tray.show_window_action.connect(self.bring_forward)
        self.tray.open_run_action.connect(self._open_from_tray)
        self.tray.quit_action.connect(self.quit_action)

    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty() and self.restoreGeometry(geometry):
            size = self.settings.value("window/size")
            if isinstance(size, QSize) and size.isValid():
                self.resize(size)
            self._fit_to_screen(keep=True)  # saved on a bigger screen than this one: brought back on screen
        page = self.settings.value("window/page", 0)
        self.apply_settings(theme_too=False)  # app.py applied the theme before any widget existed (cheaper)
        self.show_page(int(str(page)) if str(page).isdigit() and int(str(page)) < len(PAGES) else 0)

    def _fit_to_screen(self, keep: bool = False) -> None:
        """The first window: PREFERRED_SIZE, or what the screen's available area (without panels and docks)
        holds; `keep`: the user's size, only shrunk and moved where it would leave that area."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            self.resize(PREFERRED_SIZE)
            return
        area = screen.availableGeometry()
        frame = self.frameGeometry().size() - self.geometry().size()  # title bar and borders, once shown
        room = area.size() - frame
        size = self.size() if keep else PREFERRED_SIZE
        self.resize(min(size.width(), room.width()), min(size.height(), room.height()))  # Qt keeps the minimum
        if keep and area.contains(self.frameGeometry()):
            return
        self.move(area.left() + (area.width() - self.width() - frame.width()) // 2,
                  area.top() + (area.height() - self.height() - frame.height()) // 2)

    def start_background(self) -> None:
        """Work that may touch the disk or spawn nvidia-smi: after the window is on screen."""
        self.new_run.gpu_event.connect(self._gpu_known)  # connect first: the probe may answer at once
        self.new_run.detect_gpu_async()
        self.new_run.model.scan(self.settings.hf_cache)
        self.active.runs_event.connect(self._open_on_start, Qt.ConnectionType.SingleShotConnection)
        self.active.start()

    def _open_on_start(self, live: list) -> None:
        """A reopened window shows the live run (the newest one), else loads the most recent run, so the
        Monitor never says "No run open" while a run trains."""
        if self.monitor.run_dir is not None:
            return
        if live:
            self.open_run(str(live[0].path))
            return
        recent = run_store.list_runs(self.settings.runs_dir)
        if recent:
            self.monitor.open_run(recent[0].path)

    # ------------------------------------------------------------------ navigation
    def show_page(self, index: int) -> None:
        self.sidebar.setCurrentRow(index)

    def _page_changed(self, index: int) -> None:
        self.stack.setCurrentIndex(index)
        page = self.pages[index]
        if page is self.runs:
            self.runs.refresh()
        elif page in (self.export, self.try_page):
            page.reload()
        self.settings.set_value("window/page", index)

    def show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MS)

    # ------------------------------------------------------------------ runs
    def run_started(self, run_dir: str) -> None:
        self.monitor.open_run(run_dir, expect_start=True)
        self.show_page(1)
        QTimer.singleShot(1500, self.active.poll)

    def open_run(self, run_dir: str) -> None:
        self.monitor.open_run(run_dir)
        self.show_page(1)

    def resume_run(self, run_dir: str) -> None:
        try:
            start_detached(["train", "--resume", "--run-dir", run_dir], Path(run_dir))
        except Exception as exc:  # noqa: BLE001 - shown to the user
            QMessageBox.warning(self, "Resume failed", f"Could not start the engine:\n{exc}")
            return
        self.show_status(f"Resuming {Path(run_dir).name} from its last checkpoint…")
        self.monitor.open_run(run_dir, expect_start=True)
        self.show_page(1)
        QTimer.singleShot(1500, self.active.poll)

    def _command_done(self, run_dir: str, cmd: str, reply: dict) -> None:
        if self.monitor.run_dir is not None and Path(run_dir) == self.monitor.run_dir:
            return  # the Monitor says what came of its own run's commands, once it happened
        name = Path(run_dir).name
        if reply.get("ok"):
            text = {"pause": "will pause after this step", "resume": "resumed", "stop": "is stopping (saving a "
                    "checkpoint)", "save_now": "will save a checkpoint after this step"}.get(cmd, cmd)
            self.show_status(f"{name} {text}")
        else:
            self.show_status(f"{name}: {cmd} failed: {reply.get('error') or 'no reply'}")

    def _active_runs(self, runs: list) -> None:
        self.tray.update_runs(runs)
        if runs:
            self.runs_label.setText(f"{len(runs)} run{'s' if len(runs) != 1 else ''} active")
            self.runs_label.setToolTip("\n".join(run_line(r) for r in runs))
        else:
            self.runs_label.setText("")

    def _notice(self, kind: str, title: str, text: str) -> None:
        self.show_status(f"{title}: {text}")
        if not self.isVisible() or not self.isActiveWindow():
            self.tray.notify(kind, title, text)
        if kind in ("finished", "stopped", "error"):
            self.runs.refresh()

    def _gpu_known(self, gpu: object) -> None:
        if isinstance(gpu, dict):
            self.gpu_label.setText(f"{gpu.get('name')} · {fmt_bytes(gpu.get('free'))} free")
        else:
            self.gpu_label.setText("No NVIDIA GPU · CPU only")

    # ------------------------------------------------------------------ settings, window, quitting
    def apply_settings(self, theme_too: bool = True) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication) and theme_too:
            theme.apply(app, self.settings.theme)
        self.monitor.restyle()
        runs_dir = self.settings.runs_dir
        self.runs.set_runs_dir(runs_dir)
        self.export.set_runs_dir(runs_dir)
        self.try_page.set_runs_dir(runs_dir)

    def settings_action(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.apply_settings()
            self.new_run.model.scan(self.settings.hf_cache)
            self.show_status("Settings saved")

    def _open_config(self) -> None:
        self.show_page(0)
        self.new_run.open_yaml_action()

    def _about(self) -> None:
        QMessageBox.about(self, "About GRPO Studio", f"<b>GRPO Studio {__version__}</b><p>Train reasoning models "
                          "with GRPO on one home GPU: 4-bit base weights, LoRA, and a loss that never builds the "
                          "full logits.</p><p>Runs are independent processes: closing this window never stops "
                          "them.</p>")

    def _open_from_tray(self, path: str) -> None:
        self.bring_forward()
        self.open_run(path)

    def bring_forward(self) -> None:
        self.show()
        self.setWindowState((self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive)
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/size", self.size())  # restoreGeometry clamps to the screen it knows
        self.active.poll()  # what is live now, not at the last poll
        live = self.active.active
        if not self.quitting and live and self.tray.available():
            event.ignore()
            self.hide()
            self._tell_runs_go_on(live, in_tray=True)
            return
        if live:
            self._tell_runs_go_on(live, in_tray=False)
        self.shutdown()
        event.accept()
        QApplication.quit()

    def _tell_runs_go_on(self, runs: list, in_tray: bool) -> None:
        """Once (ever): the window closes, training does not — and where to find the runs again."""
        if self.settings.told_about_tray:
            return
        self.settings.told_about_tray = True
        names = ", ".join(r.name for r in runs[:3]) + (" …" if len(runs) > 3 else "")
        title = "Training goes on"
        text = (f"{names} keep{'s' if len(runs) == 1 else ''} training in its own process. " +
                ("GRPO Studio stays in the system tray: open the window again from its icon." if in_tray else
                 "Open GRPO Studio again to watch it, or follow it in a terminal with `grpo-studio runs` and "
                 "`grpo-studio attach RUN`."))
        if in_tray and self.tray.notify("info", title, text):
            return
        QMessageBox.information(self if self.isVisible() else None, title, text)

    def quit_action(self) -> None:
        """Quit the GUI only: engines are separate processes and keep training."""
        self.quitting = True
        self.close()

    def shutdown(self) -> None:
        self.settings.set_value("window/geometry", self.saveGeometry())
        self.settings.set_value("window/size", self.size())  # restoreGeometry clamps to the screen it knows
        self.settings.sync()
        self.monitor.close_run()
        self.bridge.shutdown()
        self.tray.hide()
