"""`grpo-studio chat RUN --serve --json`: the model stays loaded while the app's Try page is open.

Loading a run's model takes seconds (10-13 s for a small real model); a Generate should not pay that every time.
The process loads once, says {"type": "ready"}, then reads requests from stdin, one JSON object per line:

    {"cmd": "generate", "prompt": str, "answer": str | null, "max_new_tokens": int | null, "temperature": float}
    {"cmd": "stop"}      end the answer being generated now (it keeps what it has; "done" says "stopped": true)
    {"cmd": "quit"}      or the end of stdin (the app closed the pipe, or died): exit 0

Each generate is answered exactly as one `grpo-studio chat` call answers (token ... answer per side, then done);
a request the process cannot read gets {"type": "error", "kind": "config", ...} and its done, and the process
goes on. Requests are read on a thread, so a stop arrives while generate() runs.
"""
from __future__ import annotations

import functools
import json
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from grpo_studio.engine.chat.answers import ChatSession, Emit
from grpo_studio.engine.common.errors import StudioError


class RequestInbox:
    """Numbered generate requests from a text stream; `stopped(n)` is true once a stop came after request n."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._received = 0
        self._stop_upto = 0
        threading.Thread(target=self._read, args=(stream,), daemon=True, name="chat-requests").start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                message = None
            if not isinstance(message, dict):
                message = {"cmd": "unreadable", "text": line.strip()[:200]}
            command = message.get("cmd", "generate")
            if command == "quit":
                break
            if command == "stop":
                self._stop_upto = self._received
                continue
            self._received += 1
            self._queue.put((self._received, message))
        self._queue.put(None)

    def __iter__(self) -> Iterator[tuple[int, dict]]:
        while (item := self._queue.get()) is not None:
            yield item

    def stopped(self, number: int) -> bool:
        return self._stop_upto >= number


def request_problem(request: dict) -> str | None:
    """What is wrong with a generate request, or None."""
    if request.get("cmd", "generate") != "generate":
        return f"unknown request {request.get('cmd')!r} (expected generate, stop or quit)"
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt: write a question to answer"
    tokens = request.get("max_new_tokens")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1):
        return f"max_new_tokens: {tokens!r} is not a whole number >= 1"
    temperature = request.get("temperature", 0.0)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature < 0:
        return f"temperature: {temperature!r} is not a number >= 0"
    answer = request.get("answer")
    if answer is not None and not isinstance(answer, str):
        return f"answer: {answer!r} is not text"
    return None


def serve(path: str | Path, *, emit: Emit, requests: IO[str], base_dir: str | Path | None = None) -> int:
    """Load the run's model once, then answer every request from `requests` until it ends."""
    session = ChatSession(path, emit=emit, base_dir=base_dir)
    emit({"type": "ready"})
    inbox = RequestInbox(requests)
    for number, request in inbox:
        problem = request_problem(request)
        if problem is not None:
            emit({"type": "error", "kind": "config", "message": problem,
                  "hint": "send one JSON object per line: {\"cmd\": \"generate\", \"prompt\": ...}"})
            emit({"type": "done"})
            continue
        try:
            session.answer(request["prompt"], emit=emit, max_new_tokens=request.get("max_new_tokens"),
                           temperature=float(request.get("temperature", 0.0)), answer=request.get("answer"),
                           should_stop=functools.partial(inbox.stopped, number))
        except StudioError as error:  # e.g. a reward file that fails on this answer: say so, keep serving
            emit({"type": "error", "kind": error.kind, "message": error.message, "hint": error.hint})
            emit({"type": "done"})
    return 0
