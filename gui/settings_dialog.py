"""Settings: where runs live, which Hugging Face cache to scan, the Hugging Face token, the theme and
notifications. The token goes to huggingface_hub's own storage (engine.hub_token), never to QSettings."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.engine.common.runs import default_runs_dir
from grpo_studio.gui.settings import AppSettings
from grpo_studio.gui.widgets import FieldError, label

THEME_TEXT = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


def _folder_row(edit: QLineEdit, title: str, parent: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    button = QPushButton("Browse…")
    button.clicked.connect(lambda: _browse(edit, title, parent))
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


def _browse(edit: QLineEdit, title: str, parent: QWidget) -> None:
    folder = QFileDialog.getExistingDirectory(parent, title, edit.text() or edit.placeholderText())
    if folder:
        edit.setText(folder)


class SettingsDialog(QDialog):
    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 14)
        layout.setSpacing(12)
        form = QFormLayout()
        form.setVerticalSpacing(10)
        self.runs_dir = QLineEdit()
        self.runs_dir.setPlaceholderText(str(default_runs_dir()))
        stored = settings.value("runs_dir")
        self.runs_dir.setText(str(stored) if stored else "")
        self.hf_cache = QLineEdit(settings.hf_cache or "")
        self.hf_cache.setPlaceholderText("default (~/.cache/huggingface/hub, or $HF_HUB_CACHE)")
        self.theme = QComboBox()
        for key, text in THEME_TEXT.items():
            self.theme.addItem(text, key)
        self.theme.setCurrentIndex(list(THEME_TEXT).index(settings.theme))
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setAccessibleName("Hugging Face token")
        self.forget_token = QPushButton("Forget")
        self.forget_token.setToolTip("Remove the stored Hugging Face token from this machine")
        self.forget_token.clicked.connect(self.forget_token_action)
        self.token_error = FieldError()
        self._show_token_state()
        self.notifications = QCheckBox("Notify when a run finishes, fails or saves a checkpoint")
        self.notifications.setChecked(settings.notifications)
        self.plateau_steps = QSpinBox(minimum=0, maximum=100_000, value=settings.plateau_steps)
        self.plateau_steps.setSpecialValueText("never")
        self.plateau_steps.setSuffix(" steps")
        form.addRow("Runs folder", _folder_row(self.runs_dir, "Choose the runs folder", self))
        form.addRow("", label("New runs are created here; the Runs page lists this folder.", "Muted", wrap=True))
        form.addRow("Hugging Face cache", _folder_row(self.hf_cache, "Choose the Hugging Face cache", self))
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.forget_token)
        form.addRow("Hugging Face token", token_row)
        form.addRow("", label("Needed for gated models (accept the license on the model's page first) and private "
                              "ones. Stored by huggingface_hub in its own token file, like `hf auth login`.",
                              "Muted", wrap=True))
        form.addRow("", self.token_error)
        form.addRow("Theme", self.theme)
        form.addRow("Notifications", self.notifications)
        form.addRow("Reward plateau", self.plateau_steps)
        form.addRow("", label("Notify when a run's mean reward has not improved for this many steps.", "Muted",
                              wrap=True))
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def accept(self) -> None:
        if not self.save_token():
            return  # keep the dialog open on the error
        self.save()
        super().accept()

    def _show_token_state(self) -> None:
        from grpo_studio.engine.common.hub_token import token_stored

        stored = token_stored()
        self.token.setPlaceholderText("a token is stored (paste a new one to replace it)" if stored
                                      else "hf_… (read access is enough)")
        self.forget_token.setEnabled(stored)

    def save_token(self) -> bool:
        """Check and store a newly pasted token; False (with the reason shown) when the Hub refuses it."""
        from grpo_studio.engine.common.errors import StudioError
        from grpo_studio.engine.common.hub_token import save_token

        text = self.token.text().strip()
        if not text:
            return True
        try:
            save_token(text)
        except StudioError as error:
            self.token_error.show_error(f"{error.message} — {error.hint}" if error.hint else error.message)
            return False
        self.token.clear()
        self.token_error.show_error(None)
        self._show_token_state()
        return True

    def forget_token_action(self) -> None:
        from grpo_studio.engine.common.hub_token import forget_token

        forget_token()
        self._show_token_state()

    def save(self) -> None:
        self.settings.runs_dir = self.runs_dir.text().strip() or None
        self.settings.hf_cache = self.hf_cache.text().strip() or None
        self.settings.theme = self.theme.currentData()
        self.settings.notifications = self.notifications.isChecked()
        self.settings.plateau_steps = self.plateau_steps.value()
        self.settings.sync()
