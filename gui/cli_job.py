"""Run one `grpo-studio <command> --json` in a QProcess and turn its JSON output into Qt signals.

The GUI never imports the engine's heavy parts; it asks the CLI (dataset preview, try rewards, export, chat)
and reads JSON back without blocking the event loop. Each stdout line that is a JSON object is emitted as
`line_event`; other lines are kept as log text, never fatal. When the process ends, `finished_event` carries
the exit code, the last JSON object (the whole answer for one-shot commands) and the stderr tail.

The executable comes from engine.launcher.engine_command, where $GRPO_STUDIO_CLI (a command line) overrides it,
which is how tests swap in a fake CLI that replays recorded output.
"""
from __future__ import annotations

import json

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from grpo_studio.engine.common.launcher import engine_command


class CliJob(QObject):
    line_event = Signal(dict)
    text_event = Signal(str)
    finished_event = Signal(int, object, str)  # exit code, last JSON object (or None), stderr tail

    def __init__(self, args: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.args = list(args)
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self._buffer = b""
        self._stderr = b""
        self._last: dict | None = None
        self._text_lines: list[str] = []
        self._ended = False

    def start(self) -> None:
        argv = engine_command(self.args)
        self.process.start(argv[0], argv[1:])

    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def send(self, message: dict) -> None:
        """One JSON line to the command's stdin (a long-lived command such as `chat --serve`)."""
        if self.running():
            self.process.write((json.dumps(message) + "\n").encode("utf-8"))

    def close(self) -> None:
        """End a long-lived command: close its stdin (it exits on end of input), then SIGTERM after 3 s."""
        if self.running():
            self.process.closeWriteChannel()
            QTimer.singleShot(3000, self.cancel)

    def cancel(self) -> None:
        """Ask politely (SIGTERM), then kill after 3 s."""
        if self.running():
            self.process.terminate()
            QTimer.singleShot(3000, self._kill)

    def _kill(self) -> None:
        if self.running():
            self.process.kill()

    def _read_stdout(self) -> None:
        self._buffer += self.process.readAllStandardOutput().data()
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._handle_line(line)

    def _read_stderr(self) -> None:
        self._stderr = (self._stderr + self.process.readAllStandardError().data())[-8000:]

    def _handle_line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            self._text_lines.append(text)
            self.text_event.emit(text)
            return
        if isinstance(message, dict):
            self._last = message
            self.line_event.emit(message)
        else:  # a line of pretty-printed JSON that parses alone ("answer", 1, null): keep it for the whole
            self._text_lines.append(text)
            self.text_event.emit(text)

    def _finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._read_stdout()
        rest = self._buffer.strip()
        self._buffer = b""
        if rest:
            self._handle_line(rest)
        if self._last is None:  # pretty-printed JSON over several lines: parse the whole output once
            self._last = _parse_whole(self._collected_text())
        self._emit_finished(code)

    def _error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._stderr += f"could not start {' '.join(engine_command(self.args))}".encode()
            self._emit_finished(-1)

    def _emit_finished(self, code: int) -> None:
        if self._ended:
            return
        self._ended = True
        self.finished_event.emit(code, self._last, self._stderr.decode("utf-8", "replace").strip()[-2000:])

    def _collected_text(self) -> str:
        return "\n".join(self._text_lines)


def _parse_whole(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def error_text(result: dict | None, stderr: str, code: int) -> tuple[str, str]:
    """(message, hint) for a failed command, from its JSON error if it printed one, else from stderr."""
    if isinstance(result, dict):
        error = result.get("error") if isinstance(result.get("error"), dict) else None
        if error is None and result.get("type") == "error":
            error = result
        if error:
            return str(error.get("message", "failed")), str(error.get("hint") or "")
    lines = [line for line in stderr.splitlines() if line.strip()]
    hint = next((line[5:].strip() for line in lines if line.startswith("hint:")), "")
    message = next((line[6:].strip() for line in lines if line.startswith("error:")), "")
    if not message:
        message = lines[-1] if lines else f"the command failed (exit code {code})"
    return message, hint
