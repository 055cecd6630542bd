"""Fields of the run configuration: `setting()` declares one with its checks and help text, and
`build_dataclass()` turns a YAML mapping into the dataclass tree, reporting every problem with its dotted path
(unknown keys with a "did you mean", wrong types, values out of range or not among the choices). Torch-free."""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import field
from typing import Any

from grpo_studio.engine.common.errors import FieldError


def setting(default: Any = None, *, range: tuple | None = None, choices: tuple | None = None, help: str = "",
            factory: Any = None) -> Any:
    """A config field with its allowed range or choices and its help text (what validation, the GUI's
    editors and tooltips read)."""
    meta = {"range": range, "choices": choices, "help": help}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def build_dataclass(cls: type, data: Any, prefix: str, errors: list[FieldError]) -> Any:
    if not isinstance(data, dict):
        errors.append(FieldError(prefix.rstrip(".") or "config", f"expected a mapping, got {type(data).__name__}"))
        return cls()
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            suggestion = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            errors.append(FieldError(f"{prefix}{key}", f"unknown field{suggestion}"))
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        values[f.name] = _convert(hints[f.name], data[f.name], f, prefix + f.name, errors)
    try:
        return cls(**values)
    except TypeError as exc:  # only reachable through a bug in _convert; say so plainly
        errors.append(FieldError(prefix.rstrip(".") or "config", str(exc)))
        return cls()


def _convert(hint: Any, value: Any, f: dataclasses.Field, path: str, errors: list[FieldError]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path + ".", errors)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _convert(inner, value, f, path, errors)
    if origin is list:
        if not isinstance(value, list):
            errors.append(FieldError(path, f"expected a list, got {type(value).__name__}"))
            return []
        item = args[0]
        return [_convert(item, v, f, f"{path}[{i}]", errors) if not (isinstance(item, type)
                                                                     and dataclasses.is_dataclass(item))
                else build_dataclass(item, _reward_shorthand(v), f"{path}[{i}].", errors) for i, v in enumerate(value)]
    if value is None:
        errors.append(FieldError(path, "must not be empty"))
        return f.default if f.default is not dataclasses.MISSING else None
    choices, bounds = f.metadata.get("choices"), f.metadata.get("range")
    if isinstance(value, bool) and choices and {"on", "off"} <= set(choices):
        value = "on" if value else "off"  # unquoted YAML on/off/yes/no arrive as booleans
    converted = _scalar(hint, value)
    if converted is None:
        errors.append(FieldError(path, f"expected {hint.__name__}, got {value!r}"))
        return f.default
    if isinstance(converted, float) and not math.isfinite(converted):
        errors.append(FieldError(path, f"{converted} is out of range; a finite number is needed"))
        return converted
    if choices and converted not in choices:
        close = difflib.get_close_matches(str(converted), choices, n=1)
        suggestion = f" (did you mean '{close[0]}'?)" if close else ""
        errors.append(FieldError(path, f"'{converted}' is not one of {', '.join(choices)}{suggestion}"))
    if bounds and isinstance(converted, (int, float)):
        lo, hi = bounds
        if (lo is not None and converted < lo) or (hi is not None and converted > hi):
            errors.append(FieldError(path, f"{converted} is out of range; allowed {_range_text(lo, hi)}"))
    return converted


def _reward_shorthand(value: Any) -> Any:
    """`rewards: [math_correct, {name: format_strict, weight: 0.5}]`: a bare string means weight 1."""
    if isinstance(value, dict) and value.get("model") and "name" not in value:
        return {**value, "name": f"model:{value['model']}"}  # a reward model is named after itself
    return {"name": value} if isinstance(value, str) else value


def _scalar(hint: type, value: Any) -> Any:
    if hint is bool:
        return value if isinstance(value, bool) else None
    if hint is int:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return None
    if hint is float:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-6" as a string
            try:
                return float(value)
            except ValueError:
                return None
        return None
    if hint is str:
        return value if isinstance(value, str) else None
    return value


def _range_text(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"
