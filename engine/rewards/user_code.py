"""Calling the user's reward functions without letting them take the engine down. Torch-free.

    result = call_guarded(fn, "brevity", timeout_s=60, prompts=..., completions=...)

- `sys.exit(n)` and `raise KeyboardInterrupt` inside user code become a RewardError naming the function:
  they must not end the engine with the user's exit code (which collides with the engine's own: 3 = data,
  5 = oom) and without an `error` event.
- A call that takes longer than `timeout_s` stops the run with a RewardError naming the function. The call
  runs in a worker thread the engine waits on (a Python thread cannot be killed; the run ends instead, and
  the daemon thread goes with the process). A real Ctrl-C still reaches the engine: it waits interruptibly.
- What user code prints is capped per call (OUTPUT_CAP_BYTES, ~100 lines), then one line says how much
  was left out: a function printing every completion would otherwise write megabytes per step into the
  terminal or engine.log.
"""
from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from grpo_studio.engine.common.errors import RewardError

OUTPUT_CAP_BYTES = 8 << 10


class Failure(Exception):
    """The exception user code raised (any Exception), carried out of the worker thread."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def call_guarded(fn: Callable, name: str, timeout_s: float | None, **kwargs: Any) -> Any:
    """fn(**kwargs) with exits turned into RewardErrors, a time limit and capped output. An ordinary
    exception from user code comes back as Failure(error) so the caller can say which sample broke it."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn(**kwargs)
        except BaseException as error:  # noqa: BLE001 - everything user code can throw is reported
            outcome["error"] = error

    with capped_output(name):
        if timeout_s is None:
            work()
        else:
            worker = threading.Thread(target=work, name=f"reward-{name}", daemon=True)
            worker.start()
            worker.join(timeout_s)
            if worker.is_alive():
                raise RewardError(f"reward function '{name}' did not return within {timeout_s:g} s "
                                  "(reward_timeout_s)", "make the function faster (or look for a wait that "
                                  "never ends), or raise reward_timeout_s in the config")
    error = outcome.get("error")
    if error is None:
        return outcome.get("value")
    if isinstance(error, SystemExit):
        raise RewardError(f"reward function '{name}' called sys.exit({error.code!r})",
                          "a reward function must return its scores, never exit the process") from None
    if isinstance(error, KeyboardInterrupt):
        raise RewardError(f"reward function '{name}' raised KeyboardInterrupt",
                          "a reward function must return its scores, not interrupt the engine") from None
    if isinstance(error, Exception):
        raise Failure(error)
    raise RewardError(f"reward function '{name}' raised {type(error).__name__}: {error}",
                      "fix the function") from None


def find_failing_slice(fails: Callable[[int, int], Exception | None], n: int) -> tuple[int | None, Exception | None]:
    """The index of one sample that makes `fails(start, stop)` fail on its own, by bisection: about
    2·log2(n) calls instead of one per sample. (None, None) when no half fails alone (the function fails
    only on whole batches); (None, error) is never returned."""
    start, stop = 0, n
    while stop - start > 1:
        middle = (start + stop) // 2
        if fails(start, middle) is not None:
            stop = middle
        elif fails(middle, stop) is not None:
            start = middle
        else:
            return None, None
    error = fails(start, stop)
    return (start, error) if error is not None else (None, None)


class _CappedStream(io.TextIOBase):
    """Passes text through to `target` until the shared budget is spent, then only counts."""

    def __init__(self, target: Any, budget: list[int], dropped: list[int]) -> None:
        self.target, self.budget, self.dropped = target, budget, dropped

    def write(self, text: str) -> int:
        room = self.budget[0]
        shown = text[:room] if room > 0 else ""
        if shown:
            self.target.write(shown)
            self.budget[0] -= len(shown)
        self.dropped[0] += len(text) - len(shown)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def capped_output(name: str, cap: int = OUTPUT_CAP_BYTES) -> Iterator[None]:
    """While active, sys.stdout / sys.stderr pass at most `cap` characters (together), then one note."""
    budget, dropped = [cap], [0]
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _CappedStream(out, budget, dropped), _CappedStream(err, budget, dropped)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        if dropped[0]:
            print(f"[reward function '{name}' printed {dropped[0]} more characters; not shown]", file=err,
                  flush=True)
