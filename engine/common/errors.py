"""Errors a user can act on. Each has a kind (the `error` event's `kind`), a message and a hint.

The engine turns these into `error` events and exit codes; the CLI prints them without a traceback.
"""
from __future__ import annotations

# Exit codes by kind, so a script (or the GUI) can tell what went wrong without parsing text.
EXIT_CODES = {"config": 2, "data": 3, "reward": 4, "oom": 5, "crash": 6, "busy": 7, "export": 8,
              "disk_full": 9, "download": 10}


class StudioError(Exception):
    kind = "crash"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.kind, 1)

    def __str__(self) -> str:
        return self.message + (f"\nhint: {self.hint}" if self.hint else "")


class ConfigError(StudioError):
    kind = "config"


class DataError(StudioError):
    kind = "data"


class RewardError(StudioError):
    kind = "reward"


class RunBusyError(StudioError):
    """Another engine already owns this run folder."""

    kind = "busy"


class ExportError(StudioError):
    kind = "export"
