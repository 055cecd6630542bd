"""stop / pause / save_now on every rank at the same step boundary: rank 0's flags (set by its socket
server or signals) are broadcast once per step, and every rank's loop reads that shared snapshot."""
from __future__ import annotations

import time
from collections.abc import Callable

from grpo_studio.engine.train import ranks
from grpo_studio.engine.train.control import Control


class SharedControl(Control):
    """The loop's view of `local` (rank 0's Control; a plain one elsewhere), agreed by all ranks at `sync`."""

    def __init__(self, local: Control) -> None:
        super().__init__()
        self.local = local
        self._flags = {"stop": False, "paused": False, "save": False}

    def handle(self, cmd: str) -> str | None:
        return self.local.handle(cmd)

    def sync(self) -> None:
        flags = None
        if ranks.is_main():
            flags = {"stop": self.local.stop_requested, "paused": self.local.paused,
                     "save": self._flags["save"] or self.local.take_save_request()}
        self._flags = ranks.broadcast_object(flags)

    @property
    def stop_requested(self) -> bool:
        return self._flags["stop"]

    @property
    def paused(self) -> bool:
        return self._flags["paused"]

    def take_save_request(self) -> bool:
        save, self._flags["save"] = self._flags["save"], False
        return save

    def wait_while_paused(self, poll_s: float = 0.2, on_save: Callable[[], None] | None = None) -> bool:
        """Every rank waits, re-agreeing each poll, so all leave the pause at the same boundary; a save_now
        that arrives meanwhile is served at once on every rank (the checkpoint is collective)."""
        was_paused = self.paused
        while self.paused:
            time.sleep(poll_s)
            self.sync()
            if on_save is not None and self.take_save_request():
                on_save()
        return was_paused


def shared(control: Control) -> Control:
    """The control the loop should read: `control` itself in one process."""
    return SharedControl(control) if ranks.world_size() > 1 else control
