"""Reward functions: load them from the config, call them on a batch, check what they return, weight them.

Semantics are TRL's GRPOTrainer's, so a TRL reward function moves over unchanged: each function is called
once per batch as `f(prompts=..., completions=..., completion_ids=..., **{column: [value per sample]})`
and returns one float per sample, or None where it does not apply; the total is the weighted sum over
functions skipping the Nones (TRL's nansum), and None where every function returned None (TRL's
"unscorable": left out of its group's statistics, advantage 0). A function that raises, returns the wrong number
of values, NaN or something that is not a number stops the run with a RewardError naming the function and the sample.
Every call goes through user_code.call_guarded: sys.exit in a reward, a call past reward_timeout_s and
floods of printing are handled there.
Torch-free (the GUI's "try rewards" runs without it).
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import math
import numbers
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpo_studio.engine.common.config import RewardSpec
from grpo_studio.engine.common.errors import ConfigError, RewardError
from grpo_studio.engine.common.reward_functions import BUILTIN_REWARDS, completion_text, describe, make_length_penalty
from grpo_studio.engine.common.text import clip
from grpo_studio.engine.rewards.user_code import Failure, call_guarded, find_failing_slice

# Keyword names the trainer itself passes; dataset columns with these names are not forwarded (as TRL).
RESERVED = ("prompt", "prompts", "completion", "completions", "completion_ids", "trainer_state")
TRY_IT = "test it without training: grpo-studio try-rewards CONFIG.yaml"


@dataclass
class RewardFunction:
    name: str
    weight: float
    fn: Callable
    timeout_s: float | None = None  # per call (reward_timeout_s); None = no limit

    @property
    def description(self) -> str:
        """The docstring's summary (what the GUI shows next to the name)."""
        return describe(self.fn)


@dataclass
class RewardScores:
    total: list[float | None]  # weighted sum per sample, skipping None (None when no function applies)
    per_function: dict[str, list[float | None]]
    # name -> per sample, True where the function failed on it (a guard that keeps the run going records
    # these; a failure that stops the run never gets here). Empty = no failures.
    failures: dict[str, list[bool]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Loading


def load_reward_functions(specs: list[RewardSpec], *, max_completion_length: int | None = None,
                          base_dir: str | Path | None = None, timeout_s: float | None = None
                          ) -> list[RewardFunction]:
    """Resolve each spec: a built-in name, or `path/to/file.py:function` (relative paths from the working
    directory, else from `base_dir`, e.g. the config file's folder). `max_completion_length` sets the
    built-in `length` penalty's limit (the run's grpo.max_completion_length). `timeout_s` limits each call
    of a function from a file (reward_timeout_s); see user_code.py."""
    loaded: list[RewardFunction] = []
    for spec in specs:
        fn: Callable[..., Any]
        if spec.model:
            from grpo_studio.engine.rewards.model import RewardModel

            fn = RewardModel(spec.model, load_in_4bit=spec.load_in_4bit)
        elif ":" in spec.name and spec.name.rpartition(":")[0].endswith(".py"):
            path, _, function = spec.name.rpartition(":")
            fn, limit = _load_from_file(path, function, base_dir), timeout_s
        else:  # our own code: called inline, so math-verify keeps its signal-based timeout
            fn, limit = _builtin(spec.name, max_completion_length), None
        _check_signature(fn, spec.name)
        name = getattr(fn, "__name__", spec.name)
        if any(r.name == name for r in loaded):
            name = spec.name  # same function name from two files: keep them apart by the full spec
        if any(r.name == name for r in loaded):
            raise ConfigError(f"rewards: '{spec.name}' is listed twice", "list each reward function once "
                              "(set its weight instead)")
        loaded.append(RewardFunction(name=name, weight=float(spec.weight), fn=fn, timeout_s=limit))
    return loaded


def _builtin(name: str, max_completion_length: int | None) -> Callable:
    if name == "length" and max_completion_length:
        return make_length_penalty(max_len=max_completion_length)
    if name in BUILTIN_REWARDS:
        return BUILTIN_REWARDS[name][0]
    close = difflib.get_close_matches(name, list(BUILTIN_REWARDS), n=1)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"rewards: unknown reward function '{name}'{suggestion}",
                      f"built-ins are {', '.join(BUILTIN_REWARDS)}; for your own, write path/to/file.py:function")


def _load_from_file(path_text: str, function: str, base_dir: str | Path | None) -> Callable:
    path = Path(path_text).expanduser()
    if not path.is_absolute() and not path.is_file() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.is_file():
        raise ConfigError(f"rewards: reward file not found: {path_text}",
                          "give the path of a .py file (absolute, or relative to where you start the run)")
    module = _import_file(path.resolve())
    fn = getattr(module, function, None)
    if fn is None:
        found = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        close = difflib.get_close_matches(function, found, n=1)
        suggestion = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"rewards: {path.name} has no function '{function}'{suggestion}",
                          f"functions in that file: {', '.join(found) or 'none'}")
    if not callable(fn):
        raise ConfigError(f"rewards: {path.name}:{function} is a {type(fn).__name__}, not a function",
                          "name a function with TRL's signature f(prompts, completions, **kwargs)")
    return fn


def _import_file(path: Path) -> Any:
    """Import a .py file by path (each file once per process). Its folder goes on sys.path, so a reward
    file can import helpers that sit next to it."""
    name = f"grpo_studio_rewards_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py path always has a spec with a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ConfigError(f"rewards: syntax error in {path}, line {exc.lineno}: {exc.msg}",
                          "fix the file; check it with: python " + str(path)) from exc
    except Exception as exc:  # noqa: BLE001 - any failure while importing user code is a config problem
        del sys.modules[name]
        line = next((f.lineno for f in reversed(traceback.extract_tb(exc.__traceback__))
                     if Path(f.filename) == path), None)
        where = f", line {line}" if line else ""
        raise ConfigError(f"rewards: importing {path}{where} failed: {type(exc).__name__}: {exc}",
                          "fix the file (a missing package? install it into the app's environment)") from exc
    return module


def _check_signature(fn: Callable, spec: str) -> None:
    """TRL passes prompts, completions and completion_ids by keyword: the function must take them
    (other required parameters are dataset columns, checked when it is called)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature; the first call will tell
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    missing = [name for name in ("prompts", "completions", "completion_ids")
               if name not in params or params[name].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                              inspect.Parameter.VAR_POSITIONAL)]
    if missing:
        raise ConfigError(f"rewards: {spec} does not take TRL's arguments (no {', '.join(missing)})",
                          "define it as f(prompts, completions, completion_ids=None, **kwargs)")


# ---------------------------------------------------------------------------------------------------------
# Scoring


def score_completions(functions: list[RewardFunction], prompts: list, completions: list,
                      completion_ids: list[list[int]], columns: list[dict]) -> RewardScores:
    """Call every function once on the batch; check and weight what they return."""
    n = len(completions)
    if not (len(prompts) == len(completion_ids) == len(columns) == n):
        raise ValueError(f"score_completions: {len(prompts)} prompts, {n} completions, {len(completion_ids)} "
                         f"completion_ids and {len(columns)} column rows must be the same number")
    completions = as_conversation(prompts, completions)
    kwargs = _column_kwargs(columns)
    per_function: dict[str, list[float | None]] = {}
    for rf in functions:
        per_function[rf.name] = _call(rf, prompts, completions, completion_ids, kwargs)
    weights = [rf.weight for rf in functions]
    total = [weighted_sum([per_function[rf.name][i] for rf in functions], weights) for i in range(n)]
    return RewardScores(total=total, per_function=per_function)


def weighted_sum(values: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """The total of one completion: the weighted sum of the functions' values skipping None (TRL's nansum),
    None when every function returned None. The advantages (advantages.weighted_total) apply the same rule."""
    applied = [weight * value for value, weight in zip(values, weights) if value is not None]
    return float(sum(applied)) if applied else None


def as_conversation(prompts: list, completions: list) -> list:
    """Completions as TRL passes them: text for text prompts, [{"role": "assistant", "content": text}]
    for chat prompts (so reward functions written for TRL work unchanged)."""
    return [[{"role": "assistant", "content": c}] if isinstance(p, list) and isinstance(c, str) else c
            for p, c in zip(prompts, completions)]


def _column_kwargs(columns: list[dict]) -> dict[str, list]:
    keys: dict[str, None] = {}
    for row in columns:
        keys.update(dict.fromkeys(k for k in row if k not in RESERVED))
    return {k: [row.get(k) for row in columns] for k in keys}


def _call(rf: RewardFunction, prompts: list, completions: list, completion_ids: list,
          kwargs: dict[str, list]) -> list[float | None]:
    n = len(completions)
    kwargs = _accepted(rf.fn, kwargs)
    try:  # user code: exits, hangs and floods of output are handled by the guard
        result = call_guarded(rf.fn, rf.name, rf.timeout_s, prompts=prompts, completions=completions,
                              completion_ids=completion_ids, **kwargs)
    except Failure as failure:  # report which function and which sample
        exc = failure.error
        index, exc = _first_failing_sample(rf, prompts, completions, completion_ids, kwargs, exc)
        where = _sample_text(index, completions) if index is not None else f"a batch of {n} samples"
        raise RewardError(f"reward function '{rf.name}' raised {type(exc).__name__}: {exc} — on {where}"
                          f"{_user_line(exc)}", f"fix the function; {TRY_IT}") from exc
    if hasattr(result, "tolist"):  # numpy arrays and torch tensors
        result = result.tolist()
    if not isinstance(result, (list, tuple)):
        raise RewardError(f"reward function '{rf.name}' returned {type(result).__name__}, not a list of "
                          f"{n} numbers", f"return one float (or None) per completion; {TRY_IT}")
    if len(result) != n:
        raise RewardError(f"reward function '{rf.name}' returned {len(result)} values for {n} completions",
                          f"return one float (or None) per completion, in order; {TRY_IT}")
    scores: list[float | None] = []
    for i, value in enumerate(result):
        if value is None:
            scores.append(None)
            continue
        if not isinstance(value, numbers.Real):
            raise RewardError(f"reward function '{rf.name}' returned {clip(repr(value), 40)} "
                              f"({type(value).__name__}) for {_sample_text(i, completions)}",
                              f"return a float, or None where the reward does not apply; {TRY_IT}")
        value = float(value)
        if not math.isfinite(value):
            raise RewardError(f"reward function '{rf.name}' returned {value} for {_sample_text(i, completions)}",
                              f"return a finite float, or None where the reward does not apply; {TRY_IT}")
        if abs(value) > MAX_REWARD:
            raise RewardError(f"reward function '{rf.name}' returned {value:g} for {_sample_text(i, completions)}: "
                              "rewards this large overflow (their mean and spread are taken in float32), so "
                              "the run would learn nothing",
                              f"scale the reward to a few units (e.g. -1..1 or 0..10; only the differences within "
                              f"a group matter); {TRY_IT}")
        scores.append(value)
    return scores


# Above this a reward's squared deviation from its group's mean overflows float32 (3.4e38) once weighted and
# summed; GRPO only uses differences within a group, so no sensible reward comes near it.
MAX_REWARD = 1e15


def _accepted(fn: Callable, kwargs: dict[str, list]) -> dict[str, list]:
    """All columns for functions with **kwargs (TRL's contract); only the named ones for the rest."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return kwargs
    names = {p.name for p in params}
    return {k: v for k, v in kwargs.items() if k in names}


def _first_failing_sample(rf: RewardFunction, prompts: list, completions: list, completion_ids: list,
                          kwargs: dict[str, list], batch_exc: Exception) -> tuple[int | None, Exception]:
    """Re-run the function on halves of the batch to name one sample that breaks it on its own."""
    def fails(start: int, stop: int) -> Exception | None:
        try:
            call_guarded(rf.fn, rf.name, rf.timeout_s, prompts=prompts[start:stop],
                         completions=completions[start:stop], completion_ids=completion_ids[start:stop],
                         **{k: v[start:stop] for k, v in kwargs.items()})
        except Failure as failure:
            return failure.error
        return None

    index, exc = find_failing_slice(fails, len(completions))
    return (index, exc) if index is not None and exc is not None else (None, batch_exc)


def _user_line(exc: BaseException) -> str:
    """' (file.py, line 12)': the innermost frame outside Python's own and installed libraries, which is
    where the bug in a reward function is."""
    libraries = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix})
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(libraries) and f.filename != __file__]
    return f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else ""


def _sample_text(index: int, completions: list) -> str:
    return f"sample {index} (completion: {clip(repr(completion_text(completions[index])), 80)})"
