"""One GRPO Studio window per user: the first launch listens on a local socket; a second launch connects,
asks it to show its window, and exits. The socket name includes the user, so users do not collide."""
from __future__ import annotations

import getpass
import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

SERVER_ENV = "GRPO_STUDIO_INSTANCE"  # tests give each app its own name
SHOW = b"show\n"


def server_name() -> str:
    override = os.environ.get(SERVER_ENV)
    if override:
        return override
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"grpo-studio-{user}"


def ask_running_instance(name: str | None = None, timeout_ms: int = 500) -> bool:
    """True when another instance answered and was asked to show itself (then this one should exit)."""
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(SHOW)
    socket.flush()
    socket.waitForBytesWritten(timeout_ms)
    socket.disconnectFromServer()
    return True


class InstanceServer(QObject):
    show_event = Signal()

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self.server = QLocalServer(self)
        self.server.newConnection.connect(self._connection)

    def listen(self) -> bool:
        if self.server.listen(self.name):
            return True
        # A stale socket file from a crashed instance (nobody answered before we got here): take it over.
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def _connection(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(self._read)
            socket.disconnected.connect(socket.deleteLater)

    def _read(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket) and bytes(socket.readAll().data()).strip() == SHOW.strip():
            self.show_event.emit()

    def close(self) -> None:
        self.server.close()
