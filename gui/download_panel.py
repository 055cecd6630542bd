"""Download a hub model (or dataset) from the New-run page: its size first, then progress with speed and time left, and
cancel. The work is `grpo-studio download ID --json` in its own process (gui.cli_job), so the app never
imports the engine's heavy parts and a cancel is a signal: the files finished so far stay in the Hugging
Face cache, and the next Download (or the run itself) fetches only the rest.

    panel = DownloadPanel()
    panel.set_target("Qwen/Qwen2.5-0.5B-Instruct")   # asks for the size (`download --plan`); hidden if cached
    panel.downloaded_event.connect(...)              # repo id, snapshot folder
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from grpo_studio.engine.common.event_types import Progress, event_as, typed_event
from grpo_studio.gui.cli_job import CliJob, error_text
from grpo_studio.gui.widgets import fmt_bytes, fmt_duration, label

PLAN_DELAY_MS = 600  # wait for the typing to stop before asking the Hub
BAR_STEPS = 1000  # QProgressBar holds an int: permille, not bytes
OFFLINE_TEXT = "Downloading is off (HF_HUB_OFFLINE is set)."


def looks_like_hub_id(name: str, what: str = "model") -> bool:
    """Cheap pre-check, without importing huggingface_hub in the window: `owner/name` that is no local path.
    The `download --plan` it leads to applies engine.sources' full rule (huggingface_hub's validation)."""
    from grpo_studio.engine.common.sources import FILE_SUFFIXES

    repo = name.strip().partition(":")[0] if what == "dataset" else name.strip()
    return (repo.count("/") == 1 and not repo.startswith((".", "/", "~")) and not repo.endswith("/")
            and not repo.lower().endswith(FILE_SUFFIXES) and not Path(repo).expanduser().exists())


def downloads_off() -> bool:
    """HF_HUB_OFFLINE is set (huggingface_hub's truthy spellings): only what is cached can be used."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def progress_text(event: Progress) -> str:
    done, total = event.get("downloaded_bytes"), event.get("total_bytes")
    parts = [f"{fmt_bytes(done)} of {fmt_bytes(total)}"]
    if speed := event.get("bytes_per_s"):
        parts.append(f"{fmt_bytes(speed)}/s")
    if (eta := event.get("eta_s")) is not None:
        parts.append(f"{fmt_duration(eta)} left")
    return " · ".join(parts)


class DownloadPanel(QWidget):
    downloaded_event = Signal(str, str)  # repo id, snapshot folder

    def __init__(self, what: str = "model", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.what = what  # model | dataset
        self.repo_id = ""
        self.plan: dict | None = None
        self.plan_job: CliJob | None = None
        self.job: CliJob | None = None
        self.cancelled = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(4)
        row = QHBoxLayout()
        self.status = label("", "Muted", wrap=True)
        self.download_button = QPushButton("Download")
        self.download_button.setToolTip(f"Fetch the {what} into the Hugging Face cache now (only the files training "
                                        "needs). A run also downloads it by itself when it starts.")
        self.download_button.clicked.connect(self.download_action)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download; finished files stay in the cache")
        self.cancel_button.clicked.connect(self.cancel_action)
        row.addWidget(self.status, 1)
        row.addWidget(self.download_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.bar = QProgressBar()
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setTextVisible(False)
        self.bar.setAccessibleName("download progress")
        layout.addWidget(self.bar)
        self.plan_timer = QTimer(self)
        self.plan_timer.setSingleShot(True)
        self.plan_timer.timeout.connect(self._ask_plan)
        self._show(None)

    # ------------------------------------------------------------------------------------------ states
    def _show(self, state: str | None) -> None:
        """None: hidden; planned: size + Download; downloading: bar + Cancel; message: text only."""
        self.setVisible(state is not None)
        self.download_button.setVisible(state in ("planned", "message") and self.plan is not None)
        self.cancel_button.setVisible(state == "downloading")
        self.bar.setVisible(state == "downloading")

    def busy(self) -> bool:
        return self.job is not None and self.job.running()

    def set_target(self, name: str) -> None:
        """The picker's text changed: look the model up on the Hub after a pause in the typing."""
        name = name.strip()
        if self.busy() or name == self.repo_id:
            return
        self.repo_id, self.plan = name, None
        self.plan_timer.stop()
        if not looks_like_hub_id(name, self.what):
            self._show(None)
            return
        self.plan_timer.start(PLAN_DELAY_MS)

    def _ask_plan(self) -> None:
        if self.plan_job is not None and self.plan_job.running():
            self.plan_job.cancel()
        repo_id = self.repo_id
        self.status.setText(f"Looking for {repo_id} in the cache…" if downloads_off()
                            else f"Checking {repo_id} on the Hugging Face Hub…")
        self._show("message")
        job = CliJob(self._args(repo_id) + ["--plan"], self)
        job.finished_event.connect(lambda code, result, stderr: self._plan_done(repo_id, code, result, stderr))
        self.plan_job = job
        job.start()

    def _plan_done(self, repo_id: str, code: int, result: dict | None, stderr: str) -> None:
        if repo_id != self.repo_id or self.busy():
            return  # the user moved on
        if code != 0 or not isinstance(result, dict) or result.get("type") != "plan":
            message, hint = error_text(result, stderr, code)
            self.status.setText(OFFLINE_TEXT if downloads_off() else message + (f" — {hint}" if hint else ""))
            self._show("message")
            return
        if result.get("cached"):
            self._show(None)
            return
        self.plan = result
        missing, free = result.get("missing_bytes") or 0, result.get("free_bytes")
        text = f"Not downloaded yet: {fmt_bytes(missing)} to download ({len(result.get('files') or {})} files)"
        if free is not None:
            text += f", {fmt_bytes(free)} free"
            if missing > free:
                text += " — not enough disk space"
        self.status.setText(text + ". A run downloads it when it starts, or download it now.")
        self.download_button.setEnabled(free is None or missing <= free)
        self._show("planned")

    # ------------------------------------------------------------------------------------------ actions
    def download_action(self) -> None:
        if self.busy() or not self.repo_id:
            return
        self.cancelled = False
        self.bar.setValue(0)
        self.status.setText(f"Starting the download of {self.repo_id}…")
        self._show("downloading")
        self.job = CliJob(self._args(self.repo_id), self)
        self.job.line_event.connect(self._line)
        self.job.finished_event.connect(self._finished)
        self.job.start()

    def cancel_action(self) -> None:
        if self.job is not None and self.job.running():  # busy()
            self.cancelled = True
            self.status.setText("Cancelling…")
            self.job.cancel()

    def _args(self, repo_id: str) -> list[str]:
        return ["download", repo_id, "--json"] + (["--dataset"] if self.what == "dataset" else [])

    def _line(self, event: dict) -> None:
        progress = event_as(typed_event(event), Progress)  # `download --json` writes the run's event types
        if progress is not None and (total := progress.get("total_bytes")):
            self.bar.setValue(int(BAR_STEPS * (progress.get("downloaded_bytes") or 0) / total))
            self.status.setText(progress_text(progress))

    def _finished(self, code: int, result: dict | None, stderr: str) -> None:
        self.job = None
        if code == 0 and isinstance(result, dict) and result.get("type") == "done":
            self.status.setText(f"{self.repo_id} is in the Hugging Face cache")
            self.plan = None
            self._show("message")
            self.downloaded_event.emit(self.repo_id, str(result.get("path") or ""))
            return
        if self.cancelled:
            self.status.setText("Download cancelled. The finished files stay in the cache; Download continues "
                                "with the rest.")
        else:
            message, hint = error_text(result, stderr, code)
            self.status.setText(message + (f" — {hint}" if hint else ""))
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._show("message")
