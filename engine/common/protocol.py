"""The wire format between engine and clients: event shapes, commands and JSON framing. Torch-free.

Every event is one JSON object with `type`, `seq` (0, 1, 2, ... without gaps), `time` (unix seconds) and,
once training runs, `step`. Sizes are bytes, times seconds. The same objects are the lines of
events.jsonl and the messages on the local socket (sent with `send_bytes`; never pickle). Each event type's
fields are declared once, in event_types.py (why TypedDicts: see there).
"""
from __future__ import annotations

import json
import math
from typing import Any

from grpo_studio.engine.common.event_types import EVENT_TYPES, required_fields

# type -> fields every event of that type carries (besides type, seq, time): read off the types.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {kind: required_fields(kind) for kind in EVENT_TYPES}
# `paused`: the engine stopped between steps on a pause command; the next phase (or `done`) means it went on.
PHASES: tuple[str, ...] = ("downloading", "loading_model", "generating", "scoring", "optimizing", "saving", "paused",
          "evaluating")
# `converting_gguf`: a .gguf model is dequantized into its cached HF folder (engine.hub.gguf_import), once.
PHASES += ("converting_gguf",)
LIVE_STATES = ("starting", "running", "paused")  # status.json states of a run whose engine is (meant to be) up
ERROR_KINDS = ("oom", "data", "config", "reward", "crash", "download", "disk_full")
DONE_REASONS = ("finished", "stopped", "failed")
COMMANDS = ("stop", "pause", "resume", "save_now", "ping", "subscribe")
MAX_MESSAGE_BYTES = 1 << 20
BUSY_GREETING = b"#BUSY:"  # sent instead of the key challenge by an engine that serves its most clients already


class RunOutcome:
    """How a run's events say it ended, folded one event at a time: the `done` of its latest segment.

    A resumed run appends a new `hello` after the `done` of the segment before, so that `done` no longer
    counts. `ignore_before_seq`: an engine was just launched on the folder and its `hello` is still to come,
    so a `done` already in the file (seq below this) does not count either."""

    def __init__(self, ignore_before_seq: int = 0) -> None:
        self.ignore_before_seq = ignore_before_seq
        self.done: dict | None = None

    def see(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "hello":
            self.done = None
        elif kind == "done":
            seq = event.get("seq")
            if not isinstance(seq, int) or seq >= self.ignore_before_seq:
                self.done = event


class ProtocolError(ValueError):
    """A message that is not valid JSON of the expected shape."""


def encode(message: dict) -> bytes:
    return json.dumps(clean(message), separators=(",", ":"), allow_nan=False).encode("utf-8")


def clean(value: Any) -> Any:
    """Plain JSON values: NaN/inf become null, numpy/torch scalars plain numbers, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return clean(_jsonable(value))


def decode(payload: bytes) -> dict:
    """Parse one message; raises ProtocolError for anything but a JSON object (pickles included)."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message too large")
    try:
        message = json.loads(payload.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer past Python's digit limit
        raise ProtocolError(f"not a JSON message: {exc}") from None
    except RecursionError:  # e.g. [[[[...]]]] nested 200k deep: refuse it like any other bad message
        raise ProtocolError("not a JSON message: nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def command(cmd: str, **fields: Any) -> dict:
    return {"cmd": cmd, **fields}


def reply(cmd: str, ok: bool, error: str | None = None, **fields: Any) -> dict:
    return {"type": "reply", "cmd": cmd, "ok": ok, "error": error, **fields}


def _jsonable(value: Any) -> Any:
    # numpy / torch scalars reach us through metrics; turn them into plain numbers.
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
