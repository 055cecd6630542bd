"""The events a run writes, one TypedDict per `type`: the one place their fields are named. Torch-free.

TypedDicts rather than dataclasses because an event IS a JSON object: on disk (events.jsonl), on the socket
and in every reader (the Monitor's fold, the alarms, the signal hints, the run store) it stays the same dict,
so typing it costs no conversion and no reader has to tell "absent" (an older run) from null. Emitters keep
`emit("metrics", reward=...)`; a field its type lacks is refused by `check_fields` (EventLog.emit calls it)
at run time, and tests/test_event_types.py reads every `emit("kind", ...)` call in the engine against the
types, so a misspelt field fails CI even on a path no test runs. Readers pick events with `event_as` /
`events_of`, after which a type checker knows each field's type.

Every event read passes `typed_event` (events.parse_event for the file, client.follow_events for the
socket): a field whose JSON value does not fit its type (a string where a number belongs, from a damaged or
hand-edited file) is dropped there, once, instead of each reader testing it. Fields that are not Required
may be absent (older runs lack them): readers `.get` them. Sizes are bytes, times seconds.
"""
import types
from collections.abc import Iterable, Mapping
from typing import (
    Any,
    Literal,
    NotRequired,
    Required,
    TypedDict,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)


class _Event(TypedDict, total=False):
    seq: Required[int]  # 0, 1, 2, ... without gaps, across a resume too
    time: Required[float]  # unix seconds
    # `step` is stamped on every event once training runs: required in the types that always carry it


class _MaybeStep(_Event, total=False):
    step: int  # absent before training runs


class _OfAStep(_Event, total=False):
    step: Required[int]  # the training step it reports on


class Hello(_MaybeStep, total=False):
    type: Required[Literal["hello"]]
    version: Required[str]
    device: Required[str]
    gpu_name: Required[str | None]
    gpu_total: Required[int | None]
    config_hash: Required[str]
    total_steps: Required[int | None]


class Phase(_MaybeStep, total=False):
    """Also the download (what, repo_id, sizes, files) and GGUF conversion (gguf, stage) before training."""
    type: Required[Literal["phase"]]
    phase: Required[str]  # one of protocol.PHASES
    what: str
    repo_id: str
    total_bytes: int | None
    missing_bytes: int | None
    files: int
    gguf: str
    stage: str


class Progress(_OfAStep, total=False):
    """A training step done; before training also a download's or a GGUF hash's progress (with `phase`)."""
    type: Required[Literal["progress"]]
    total_steps: Required[int | None]
    eta_s: Required[float | None]
    tokens_per_s: Required[float | None]
    phase: str
    what: str
    repo_id: str
    downloaded_bytes: int
    done_bytes: int
    total_bytes: int | None
    bytes_per_s: float | None
    gguf: str


class Metrics(_OfAStep, total=False):
    type: Required[Literal["metrics"]]
    reward: Required[float | None]
    reward_std: Required[float | None]
    rewards: Required[dict[str, Any]]  # function name -> {mean, std} (older runs: the mean alone)
    loss: Required[float | None]
    kl: Required[float | None]  # null when beta = 0: no reference pass, nothing measured
    clip_ratio: Required[float | None]
    completion_length: Required[dict[str, Any]]  # {mean, max} tokens
    lr: Required[float | None]
    grad_norm: Required[float | None]
    signal: NotRequired[dict[str, Any]]  # the learning signal (engine/train/step_metrics.py); older runs lack it


class Memory(_OfAStep, total=False):
    type: Required[Literal["memory"]]
    gpu_allocated: Required[int | None]  # null on CPU
    gpu_reserved: Required[int | None]
    gpu_peak: Required[int | None]
    gpu_peak_reserved: int | None
    rss: Required[int]
    offloaded: Required[int]
    offloaded_peak: Required[int]


class Sample(_OfAStep, total=False):
    type: Required[Literal["sample"]]
    prompt: Required[str]
    completion: Required[str]
    rewards: Required[dict[str, Any]]
    reward: Required[float | None]


class Group(_OfAStep, total=False):
    """One prompt's G completions, best to worst: each {completion, reward, rewards, advantage, length,
    truncated}."""
    type: Required[Literal["group"]]
    prompt: Required[str]
    group_size: Required[int]
    completions: Required[list[Any]]


class Log(_MaybeStep, total=False):
    type: Required[Literal["log"]]
    level: Required[str]  # info | warning | error
    message: Required[str]
    recovery: dict[str, Any]  # an out-of-memory recovery (engine/train/oom_recovery.py): phase, setting, old, new, ...


class Checkpoint(_OfAStep, total=False):
    type: Required[Literal["checkpoint"]]
    path: Required[str]


class Error(_MaybeStep, total=False):
    type: Required[Literal["error"]]
    kind: Required[str]  # one of protocol.ERROR_KINDS
    message: Required[str]
    hint: Required[str | None]


class Done(_MaybeStep, total=False):
    type: Required[Literal["done"]]
    reason: Required[str]  # one of protocol.DONE_REASONS
    adapter: Required[str | None]


class Eval(_OfAStep, total=False):
    """Held-out evaluation (engine/evaluate/held_out.py): `reward` is the mean weighted total reward over the held-out
    prompts; `accuracy` the share of them whose correctness reward (`accuracy_reward`: math_correct when the run
    uses it, else its first reward function) is full (>= 1), prompts it does not score left out; `rewards` maps
    each function to its mean. Step 0 is the base model (the adapter starts at zero)."""
    type: Required[Literal["eval"]]
    reward: Required[float | None]
    accuracy: Required[float | None]
    accuracy_reward: Required[str | None]
    rewards: Required[dict[str, Any]]
    num_prompts: Required[int]
    completion_length: float  # mean tokens
    truncated: float | None  # share cut off at the length limit
    greedy: bool
    examples: list[Any]  # [{prompt, completion, reward, correct}]
    side: str  # `grpo-studio eval`: base | tuned
    adapter: str | None


Event = Hello | Phase | Progress | Metrics | Memory | Sample | Group | Log | Checkpoint | Error | Done | Eval
EVENT_TYPES: dict[str, type] = {get_args(get_type_hints(cls)["type"])[0]: cls for cls in get_args(Event)}
_HINTS: dict[str, dict[str, Any]] = {kind: get_type_hints(cls) for kind, cls in EVENT_TYPES.items()}
_STAMPED = frozenset(("type", "seq", "time"))
_KINDS: dict[type, str] = {cls: kind for kind, cls in EVENT_TYPES.items()}
E = TypeVar("E", Hello, Phase, Progress, Metrics, Memory, Sample, Group, Log, Checkpoint, Error, Done, Eval)


def event_as(event: Mapping[str, Any], cls: type[E]) -> E | None:
    """`event` as a `cls` event when its `type` says it is one, else None: how readers pick the events they
    fold and read their fields typed (`event_as(e, Metrics)` then `.get("reward")`)."""
    return cast(E, event) if event.get("type") == _KINDS[cls] else None


def events_of(events: Iterable[Mapping[str, Any]], cls: type[E]) -> list[E]:
    """The `cls` events among `events`, in order."""
    return [cast(E, event) for event in events if event.get("type") == _KINDS[cls]]


def fields_of(kind: str) -> tuple[str, ...]:
    """Every field an event of type `kind` may carry besides type, seq and time (ValueError for no such type)."""
    if kind not in _HINTS:
        raise ValueError(f"no event type {kind!r} (one of {', '.join(EVENT_TYPES)})")
    return tuple(name for name in _HINTS[kind] if name not in _STAMPED)


def required_fields(kind: str) -> tuple[str, ...]:
    """The fields every event of type `kind` carries besides type, seq and time."""
    required = EVENT_TYPES[kind].__required_keys__  # type: ignore[attr-defined]
    return tuple(name for name in fields_of(kind) if name in required)


def check_fields(kind: str, fields: dict[str, Any]) -> None:
    """TypeError when `fields` names one its event type does not have (a misspelt or undeclared field)."""
    if kind not in _HINTS:
        raise TypeError(f"no event type {kind!r}: declare it in engine/common/event_types.py")
    unknown = [name for name in fields if name not in _HINTS[kind]]
    if unknown:
        raise TypeError(f"{kind} events have no field {', '.join(map(repr, unknown))}: declare it in "
                        f"engine/common/event_types.py or fix the name")


def typed_event(raw: dict[str, Any]) -> dict[str, Any]:
    """A decoded event with every declared field that does not fit its type left out; fields no type declares
    (a newer engine's) and events of unknown types pass unchanged, for readers to ignore."""
    fits = _JSON_TYPES.get(raw.get("type"))  # type: ignore[arg-type]
    if fits is None:
        return raw
    misfits = [name for name, value in raw.items() if name in fits and not _fits(value, fits[name])]
    return {k: v for k, v in raw.items() if k not in misfits} if misfits else raw


def _fits(value: Any, allowed: tuple[type, ...]) -> bool:
    # JSON true is no number: a bool fits only a field that says bool (or Any)
    return isinstance(value, allowed) and (not isinstance(value, bool) or bool in allowed or object in allowed)


def _json_types(hint: Any) -> tuple[type, ...]:
    """The Python types of the JSON values that fit a field annotated `hint` (worked out once per field: every
    event read passes typed_event)."""
    if hint is Any:
        return (object,)
    if get_origin(hint) in (Union, types.UnionType):
        return tuple(t for arg in get_args(hint) for t in _json_types(arg))
    if get_origin(hint) is Literal:
        return (str,)  # `type`: its value picked these types
    if hint is float:
        return (int, float)
    return (get_origin(hint) or hint,)


_JSON_TYPES = {kind: {name: _json_types(hint) for name, hint in hints.items()} for kind, hints in _HINTS.items()}
