"""The app's preferences and remembered state (QSettings): runs folder, HF cache folder, theme, notifications,
window geometry and the last New run form. $GRPO_STUDIO_SETTINGS (an .ini path) keeps tests and screenshots
away from the user's real settings."""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from grpo_studio.engine.common.runs import default_runs_dir

SETTINGS_ENV = "GRPO_STUDIO_SETTINGS"
DEFAULT_PLATEAU_STEPS = 50


class AppSettings:
    def __init__(self, store: QSettings | None = None) -> None:
        if store is None:
            path = os.environ.get(SETTINGS_ENV)
            store = QSettings(path, QSettings.Format.IniFormat) if path else QSettings("grpo-studio", "GRPO Studio")
        self.store = store

    def _get(self, key: str, default: object = None) -> object:
        return self.store.value(key, default)

    def _bool(self, key: str, default: bool) -> bool:
        value = self.store.value(key, default)
        return value in (True, "true", "1", 1) if not isinstance(value, bool) else value

    @property
    def runs_dir(self) -> Path:
        value = self._get("runs_dir")
        return Path(str(value)) if value else default_runs_dir()

    @runs_dir.setter
    def runs_dir(self, path: Path | str | None) -> None:
        self.store.setValue("runs_dir", str(path) if path else "")

    @property
    def hf_cache(self) -> str | None:
        value = self._get("hf_cache")
        return str(value) if value else None

    @hf_cache.setter
    def hf_cache(self, path: str | None) -> None:
        self.store.setValue("hf_cache", path or "")

    @property
    def theme(self) -> str:
        value = str(self._get("theme", "system"))
        return value if value in ("system", "light", "dark") else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        self.store.setValue("theme", value)

    @property
    def notifications(self) -> bool:
        return self._bool("notifications", True)

    @notifications.setter
    def notifications(self, on: bool) -> None:
        self.store.setValue("notifications", bool(on))

    @property
    def plateau_steps(self) -> int:
        """Notify when a run's mean reward has not improved for this many steps (0 = never)."""
        value = self._get("plateau_steps", DEFAULT_PLATEAU_STEPS)
        try:
            return max(0, int(value)) if isinstance(value, (int, float, str)) else DEFAULT_PLATEAU_STEPS
        except ValueError:
            return DEFAULT_PLATEAU_STEPS

    @plateau_steps.setter
    def plateau_steps(self, steps: int) -> None:
        self.store.setValue("plateau_steps", max(0, int(steps)))

    @property
    def told_about_tray(self) -> bool:
        return self._bool("told_about_tray", False)

    @told_about_tray.setter
    def told_about_tray(self, value: bool) -> None:
        self.store.setValue("told_about_tray", bool(value))

    def value(self, key: str, default: object = None) -> object:
        return self._get(key, default)

    def set_value(self, key: str, value: object) -> None:
        self.store.setValue(key, value)

    def sync(self) -> None:
        self.store.sync()
