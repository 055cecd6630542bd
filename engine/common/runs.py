"""The run folder and the run store. Torch-free: the GUI and the CLI list and inspect runs with it.

    config.yaml  status.json  secret  events.jsonl  engine.log  checkpoints/step-N/  adapter/  exports/
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from grpo_studio.engine.common.engine_proof import lock_is_free
from grpo_studio.engine.common.event_types import Error, Eval, Metrics, event_as
from grpo_studio.engine.common.events import EventTail
from grpo_studio.engine.common.protocol import LIVE_STATES, RunOutcome

RUNS_DIR_ENV = "GRPO_STUDIO_RUNS_DIR"


def default_runs_dir() -> Path:
    """$GRPO_STUDIO_RUNS_DIR, else the platform's user data folder (~/.local/share/grpo-studio/runs)."""
    override = os.environ.get(RUNS_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("grpo-studio")) / "runs"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def secret(self) -> Path:
        return self.root / "secret"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log(self) -> Path:
        return self.root / "engine.log"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def lock(self) -> Path:
        return self.root / "engine.lock"


def new_run_dir(name_hint: str, runs_dir: Path | None = None) -> Path:
    """A fresh, unique run folder named after the time and the model/task (`2026-11-25_0445_demo`)."""
    runs_dir = runs_dir or default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name_hint.split("/")[-1]).strip("-")[:40] or "run"
    stem = time.strftime("%Y-%m-%d_%H%M%S") + "_" + slug
    candidate, n = runs_dir / stem, 1
    while candidate.exists():
        n += 1
        candidate = runs_dir / f"{stem}-{n}"
    candidate.mkdir(mode=0o700)  # prompts, completions and rewards are the user's alone
    return candidate


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# status.json's fields and their types; a field of another type is dropped and the run reported damaged.
_STATUS_TYPES: dict[str, tuple[type, ...]] = {"pid": (int,), "state": (str,), "started": (int, float),
                                              "step": (int,), "total_steps": (int,), "endpoint": (str,),
                                              "folder": (str,)}
# What ties status.json to its engine; kept only while status.json is in the folder its engine wrote it in.
_ENGINE_FIELDS = ("pid", "endpoint", "folder")


def folder_identity(folder: Path) -> str:
    """The run folder itself (device and inode): the same after a rename, another for a copy (`cp -a`)."""
    info = os.stat(folder)
    return f"{info.st_dev}:{info.st_ino}"


def _is_a_copy(paths: RunPaths, data: dict[str, Any]) -> bool:
    """status.json names another folder than the one it is in: this folder is a copy of a run's folder, and
    its pid and socket are the original's engine, not this run's."""
    recorded = data.get("folder")
    if not recorded:
        return False  # written before runs recorded their folder
    try:
        return recorded != folder_identity(paths.root)
    except OSError:
        return False


def load_status(paths: RunPaths) -> tuple[dict[str, Any], str | None]:
    """status.json as a dict whose known fields have their types, and what is wrong with the file (None when
    nothing is): any content — not JSON, not UTF-8, not an object, a field of the wrong type — is read, never
    raised, so one damaged run never stops the others from listing."""
    try:
        raw = paths.status.read_bytes()
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        return {}, f"status.json cannot be read ({error.strerror or error})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, "status.json is not UTF-8 text"
    except (ValueError, RecursionError):  # JSONDecodeError, an integer past Python's digit limit, deep nesting
        return {}, "status.json is not valid JSON"
    if not isinstance(data, dict):
        what = {list: "an array", str: "a string", type(None): "null"}.get(type(data), "a number")
        return {}, f"status.json holds {what} instead of an object"
    bad = [key for key, types in _STATUS_TYPES.items() if data.get(key) is not None
           and (not isinstance(data[key], types) or isinstance(data[key], bool))]
    for key in bad:
        del data[key]
    if _is_a_copy(paths, data):
        for key in _ENGINE_FIELDS:
            data.pop(key, None)
        if data.get("state") in LIVE_STATES:  # copied while it trained: say why it has no engine
            return data, ("a copy of a live run's folder: the engine its status.json names belongs to the "
                          "original; resume the copy to train it on its own")
    return data, (f"status.json has a malformed {', '.join(bad)}" if bad else None)


def read_status(paths: RunPaths) -> dict[str, Any]:
    """status.json's well-formed fields ({} for a missing or damaged file)."""
    return load_status(paths)[0]


def write_status(paths: RunPaths, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json (atomically) and return the new status."""
    status = read_status(paths)
    status.update(fields)
    atomic_write_text(paths.status, json.dumps(status, indent=1))
    return status


# ---------------------------------------------------------------------------------------------------------
# The run store: what the GUI's Runs page, the tray and `grpo-studio runs` show.



@dataclass
class RunSummary:
    name: str
    path: Path
    state: str
    model: str
    dataset: str
    step: int
    total_steps: int | None
    started: float | None
    updated: float | None
    duration_s: float | None
    reward: float | None
    best_reward: float | None
    pid: int | None
    error: str | None
    damage: str | None = None  # what is wrong with the run's files, when something is
    eval_before: float | None = None  # held-out accuracy at the run's first evaluation (step 0: the base model)
    eval_after: float | None = None  # ... and at its latest after that (None while there is none)

    @property
    def alive(self) -> bool:
        return self.state in LIVE_STATES


@dataclass
class _EventDigest:
    """What the store needs from events.jsonl, kept per file and extended only by the lines appended since,
    so listing long runs stays cheap."""
    tail: EventTail
    reward: float | None = None
    best_reward: float | None = None
    step: int = 0
    outcome: RunOutcome = field(default_factory=RunOutcome)
    error: str | None = None
    first_time: float | None = None
    last_time: float | None = None
    eval_before: float | None = None
    eval_after: float | None = None

    @property
    def done(self) -> str | None:
        """How the latest segment ended (finished | stopped | failed), None while it has not."""
        return self.outcome.done.get("reason") if self.outcome.done else None

    @property
    def damage(self) -> str | None:
        """The first line that is not an event, if any."""
        line = self.tail.first_damaged
        return f"events.jsonl line {line} is not an event" if line else None


_digests: dict[Path, _EventDigest] = {}


def _digest_events(path: Path) -> _EventDigest:
    digest = _digests.get(path)
    if digest is None or digest.tail.shrunk():  # new file, or rewritten (truncated torn line)
        digest = _EventDigest(EventTail(path))
    for event in digest.tail.new_events():
        _fold(digest, event)
    _digests[path] = digest
    return digest


def _fold(digest: _EventDigest, event: dict) -> None:
    when = event.get("time")
    if isinstance(when, (int, float)):
        digest.first_time = when if digest.first_time is None else digest.first_time
        digest.last_time = when
    if isinstance(event.get("step"), int):
        digest.step = max(digest.step, event["step"])
    digest.outcome.see(event)
    metrics, held_out, error = event_as(event, Metrics), event_as(event, Eval), event_as(event, Error)
    if metrics is not None and (reward := metrics.get("reward")) is not None:
        digest.reward = float(reward)
        digest.best_reward = digest.reward if digest.best_reward is None else max(digest.best_reward,
                                                                                  digest.reward)
    elif held_out is not None and (accuracy := held_out.get("accuracy")) is not None:
        if digest.eval_before is None:
            digest.eval_before = float(accuracy)
        else:
            digest.eval_after = float(accuracy)
    elif error is not None:
        hint = error.get("hint")
        digest.error = str(error.get("message", "")) + (f" (hint: {hint})" if hint else "")


def engine_alive(status: dict[str, Any]) -> bool:
    """True when the pid in status.json is this run's engine (not a later process that reused the pid)."""
    pid = status.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        import psutil

        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = status.get("started")
        # the engine writes `started` after it was created; a process created later reused the pid
        return not (isinstance(started, (int, float)) and process.create_time() > started + 2.0)
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess, AccessDenied: treat as gone
        return False


def run_is_live(status: dict[str, Any], paths: RunPaths | None = None) -> bool:
    """The one liveness check: status.json says starting / running / paused and its engine process is there.
    With the run's paths, a running or paused run whose lock nobody holds has no engine, whatever process now
    has its pid (a folder from a container or another machine, a reused pid)."""
    if status.get("state") not in LIVE_STATES or not engine_alive(status):
        return False
    return paths is None or status.get("state") == "starting" or not lock_is_free(paths.lock)


def _config_summary(paths: RunPaths) -> tuple[str, str]:
    try:
        import yaml

        data = yaml.safe_load(paths.config.read_text(encoding="utf-8")) or {}
        dataset = data.get("dataset") or {}
        return str(data.get("model", "?")), str(dataset.get("path", "?") if isinstance(dataset, dict) else "?")
    except Exception:  # noqa: BLE001 - a hand-edited or missing config still lists as a run
        return "?", "?"


def run_state(status: dict[str, Any], digest: _EventDigest, paths: RunPaths | None = None) -> str:
    if not status and digest.tail.offset == 0:
        return "created"
    state = status.get("state")
    if run_is_live(status, paths):
        return str(state)
    if digest.done in ("finished", "stopped", "failed"):
        return digest.done
    if state in ("finished", "stopped", "failed"):
        return state
    return "crashed"  # it was running, its process is gone, and it never said it was done


def summarize_run(run_dir: Path) -> RunSummary:
    paths = RunPaths(Path(run_dir))
    status, damage = load_status(paths)
    digest = _digest_events(paths.events)
    state = run_state(status, digest, paths)
    damage = damage or digest.damage
    if damage and state not in LIVE_STATES:  # a live engine rewrites status.json; say so once it stops
        state = "damaged"
    model, dataset = _config_summary(paths)
    started = status.get("started") or digest.first_time
    updated = digest.last_time
    duration = (updated - started) if (started and updated) else None
    return RunSummary(
        name=paths.root.name, path=paths.root, state=state, model=model, dataset=dataset,
        step=max(int(status.get("step") or 0), digest.step), total_steps=status.get("total_steps"),
        started=started, updated=updated, duration_s=duration, reward=digest.reward,
        best_reward=digest.best_reward, pid=status.get("pid"), error=f"this run is damaged: {damage}" if damage
        else digest.error if state == "failed" or state == "crashed" else None, damage=damage,
        eval_before=digest.eval_before, eval_after=digest.eval_after)


def list_runs(runs_dir: Path | None = None) -> list[RunSummary]:
    """Every run folder (one with a config.yaml or status.json) under the runs folder, newest first."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    summaries = [summarize_run(p) for p in runs_dir.iterdir()
                 if p.is_dir() and ((p / "config.yaml").exists() or (p / "status.json").exists())]
    return sorted(summaries, key=lambda s: (s.started or 0.0, s.name), reverse=True)


def resolve_run(name_or_path: str, runs_dir: Path | None = None) -> Path:
    """A run folder from a path, a run name under the runs folder, or a unique prefix of one. A folder that
    is not a run (no config.yaml or status.json: /tmp, /etc) is an error, not a run "created at step 0"."""
    from glob import escape as glob_escape

    from grpo_studio.engine.common.errors import StudioError

    direct = Path(name_or_path).expanduser()
    if direct.is_dir() and (RunPaths(direct).config.exists() or RunPaths(direct).status.exists()):
        return direct.resolve()
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    is_name = bool(name_or_path) and "/" not in name_or_path and os.sep not in name_or_path
    candidates = (sorted(p for p in runs_dir.glob(f"{glob_escape(name_or_path)}*") if p.is_dir())
                  if is_name and runs_dir.is_dir() else [])
    exact = [p for p in candidates if p.name == name_or_path]
    if exact or len(candidates) == 1:
        return (exact or candidates)[0]
    if not candidates and direct.is_dir():
        raise StudioError(f"{direct} is not a run folder (it has no config.yaml or status.json)",
                          "give a run's name as `grpo-studio runs` lists it, or the folder of a run")
    if not candidates:
        raise StudioError(f"no run named '{name_or_path}' in {runs_dir}",
                          "list runs with `grpo-studio runs`, or pass the run folder's path")
    names = ", ".join(p.name for p in candidates[:5])
    raise StudioError(f"'{name_or_path}' matches several runs: {names}", "type more of the run's name")


def delete_run(run_dir: Path) -> None:
    """Remove a run folder; refused while its engine is alive (stop it first)."""
    import shutil

    from grpo_studio.engine.common.errors import RunBusyError

    summary = summarize_run(run_dir)
    if summary.alive:
        raise RunBusyError(f"run {summary.name} is still {summary.state} (pid {summary.pid})",
                           "stop it first (`grpo-studio stop RUN`)")
    _digests.pop(RunPaths(Path(run_dir)).events, None)
    shutil.rmtree(run_dir)
