"""The run folder removed while the engine trains (`rm -rf RUN`, the app's folder deleted by hand).

The engine keeps training in memory, and its event log recreates events.jsonl on its own; without more the
folder would come back with no lock, no secret, no config and a status without pid or socket, so `runs`
would call the run crashed and `stop` would find no engine. At each step the guard notices that the folder
is not the one the engine started in (or is gone) and puts back what makes it this engine's run: the lock
(held again), the secret (the same key, so clients can connect), config.yaml and a full status.json. It
says so in the log: the checkpoints and samples written before are gone.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from grpo_studio.engine.common.runs import RunPaths, atomic_write_text, folder_identity, write_status
from grpo_studio.engine.run.folder import make_private_dir
from grpo_studio.engine.run.lock import RunLock


class FolderGuard:
    def __init__(self, paths: RunPaths, lock: RunLock, config_text: str, status: Callable[[], dict],
                 secret: Callable[[], bytes | None], log: Callable[[str], object]) -> None:
        """`status`: the engine's status fields now (pid, state, started, step, total_steps, endpoint);
        `secret`: the socket's key (None without a socket); `log`: a warning for the run's log."""
        self.paths = paths
        self.lock = lock
        self.config_text = config_text
        self.status = status
        self.secret = secret
        self.log = log
        self.identity = self._identity()

    def _identity(self) -> str | None:
        try:
            return folder_identity(self.paths.root)
        except OSError:
            return None

    def check(self) -> bool:
        """Restore the run folder if it was removed or replaced since the last check; True when it was."""
        now = self._identity()
        if now is not None and now == self.identity and self.paths.lock.exists():
            return False
        make_private_dir(self.paths.root)
        self.lock.renew()
        secret = self.secret()
        if secret is not None:
            _write_private(self.paths.secret, secret)
        atomic_write_text(self.paths.config, self.config_text)
        self.identity = self._identity()
        write_status(self.paths, **{**self.status(), "folder": self.identity})
        self.log(f"the run folder {self.paths.root} was removed while the run trained; it is recreated "
                 "(lock, key, config, status) and training goes on — checkpoints saved before are gone")
        return True


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
