"""The New-run page's model configs: each model's config.json (or the estimator's table entry) read once, in a
thread, since it may read the disk or the HF cache; the answer is kept for the session."""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.estimate import load_model_config


class ModelConfigs(QObject):
    answered_event = Signal(str)  # a model whose config (or error) has just arrived
    _done = Signal(str, object, str)  # model, config dict or None, error text (from the lookup thread)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._answers: dict[str, tuple[dict | None, str]] = {}
        self._pending: set[str] = set()
        self._done.connect(self._arrived)

    def get(self, model: str) -> tuple[dict | None, str, bool]:
        """(config, error, pending): answered from what is known, else looked up in a thread."""
        if not model:
            return None, "choose a model (or 'demo')", False
        if model in self._answers:
            config, error = self._answers[model]
            return config, error, False
        if model not in self._pending:
            self._pending.add(model)
            threading.Thread(target=self._lookup, args=(model,), daemon=True).start()
        return None, "", True

    def _lookup(self, model: str) -> None:
        try:
            config, error = load_model_config(model), ""
        except ConfigError as exc:
            config, error = None, exc.message + (f" — {exc.hint}" if exc.hint else "")
        except Exception as exc:  # noqa: BLE001 - a broken config.json must not kill the form
            config, error = None, f"cannot read the model's config: {exc}"
        self._done.emit(model, config, error)

    def _arrived(self, model: str, config: object, error: str) -> None:
        self._pending.discard(model)
        self._answers[model] = (config if isinstance(config, dict) else None, error)
        self.answered_event.emit(model)
