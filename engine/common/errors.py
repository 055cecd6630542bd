"""Errors a user can act on. Each has a kind (the `error` event's `kind`), a message and a hint.

The engine turns these into `error` events and exit codes; the CLI prints them without a traceback.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

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


class FieldError(NamedTuple):
    """One invalid config field: its dotted path ("grpo.beta", "rewards[1].weight", "config" for the whole
    mapping) and what is wrong with it. Printed as one line of the "invalid config:" list."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(StudioError):
    """A config that cannot run. `fields` lists its invalid fields as data (the GUI shows each under its
    editor); the message says the same in text for the CLI."""

    kind = "config"

    def __init__(self, message: str, hint: str = "", fields: Sequence[FieldError] = ()) -> None:
        super().__init__(message, hint)
        self.fields = tuple(fields)

    def field_messages(self) -> dict[str, str]:
        """{dotted path: message}, the first problem of each field; {"": message} when no field is named."""
        by_path: dict[str, str] = {}
        for error in self.fields:
            by_path.setdefault(error.path, error.message)
        return by_path or ({"": self.message} if self.message else {})


class DataError(StudioError):
    kind = "data"


class RewardError(StudioError):
    kind = "reward"


class RunBusyError(StudioError):
    """Another engine already owns this run folder."""

    kind = "busy"


class ExportError(StudioError):
    kind = "export"
