"""One training run in one run folder: the process-level wrapper around the Trainer.

`run_engine` owns the run folder (config.yaml, status.json, events.jsonl, the lock), sends the hello /
done events, turns failures into an `error` event plus an exit code (a StudioError names what to fix;
running out of GPU memory, in any of its forms (oom.py), names the setting to lower and keeps the last
completed step as a checkpoint; anything else is a crash with the traceback on stderr), and writes
the final adapter. The terminal progress bar is just another listener of the same events.

A full disk anywhere (events, status, checkpoint, adapter) ends as an `error` of kind disk_full: the run
holds a small reserve file (disk.py) and frees it first, so the error event and the final status still fit.
Everything the engine writes is private to the user (umask 077: folders 0700, files 0600).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from grpo_studio import __version__
from grpo_studio.engine.common.config import TrainConfig, dump_config
from grpo_studio.engine.common.disk import DiskFullError, SpaceReserve, as_disk_full
from grpo_studio.engine.common.errors import EXIT_CODES, StudioError
from grpo_studio.engine.common.event_types import Phase, event_as
from grpo_studio.engine.common.events import EventLog
from grpo_studio.engine.common.runs import RunPaths, atomic_write_text, folder_identity, write_status
from grpo_studio.engine.hub.download import DownloadCancelled
from grpo_studio.engine.run.autofit import fit_before_loading
from grpo_studio.engine.run.folder import make_private_dir, secure_run_files
from grpo_studio.engine.run.folder_guard import FolderGuard
from grpo_studio.engine.run.lock import RunLock
from grpo_studio.engine.run.server import EngineServer
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.train.oom import LastCompletedStep, OomFailure, classify_oom, release_memory

STATUS_EVERY_S = 1.0  # status.json is rewritten (with fsync) at most this often; events carry every step


def run_engine(config: TrainConfig, run_dir: Path, *, resume: bool = False, control: Control | None = None,
               quiet: bool = False, notes: list[str] | None = None) -> int:
    """Train `config` in `run_dir`; returns the process exit code (0 = finished or stopped).
    `notes`: what the command line decided before (changes applied on resume, ...), logged as info."""
    umask = os.umask(0o077)
    try:
        return _run_engine(config, run_dir, resume=resume, control=control, quiet=quiet, notes=notes or [])
    finally:
        os.umask(umask)


def _run_engine(config: TrainConfig, run_dir: Path, *, resume: bool, control: Control | None, quiet: bool,
                notes: list[str]) -> int:
    import torch

    from grpo_studio.engine.distributed import launch

    if not launch.join(config, run_dir):  # a rank > 0 under torchrun: trains, owns nothing
        return launch.run_other_rank(config, run_dir, resume=resume)
    paths = RunPaths(Path(run_dir))
    make_private_dir(paths.root)
    try:
        lock = RunLock(paths.root).acquire()  # first: a second engine on this folder stops here
    except OSError as error:
        return _full_before_start(error, paths)
    secure_run_files(paths)
    reserve = SpaceReserve(paths.root).hold()
    try:
        events = EventLog(paths.events)
    except OSError as error:
        reserve.release()
        lock.close()
        return _full_before_start(error, paths)
    control = control or Control()
    printer = None
    if not quiet:
        from grpo_studio.engine.run.progress import ProgressPrinter

        printer = ProgressPrinter()
        events.add_listener(printer.handle)
    server = None
    trainer = None
    phase = _LastPhase()
    events.add_listener(phase.handle)
    completed: list[LastCompletedStep] = []  # set after setup: where an OOM checkpoint would resume
    try:
        fit = fit_before_loading(config, resume)  # fit: auto (and the CPU's RAM guard), before anything loads
        config = fit.config
        atomic_write_text(paths.config, dump_config(config))  # what this process runs (a resume may add --steps)
        status = {"pid": os.getpid(), "state": "starting", "started": time.time(), "step": 0,
                  "total_steps": config.max_steps, "folder": folder_identity(paths.root)}
        write_status(paths, **status)
        try:
            server = EngineServer(paths, events, control).start()
        except OSError as error:  # the run still trains; only live attach / commands are unavailable
            events.emit("log", level="warning", message=f"no control socket ({error}); stop with Ctrl-C or SIGTERM")
        device = "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"
        gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else None
        gpu_total = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None
        events.emit("hello", version=__version__, device=device, gpu_name=gpu_name, gpu_total=gpu_total,
                    config_hash=config.config_hash(), total_steps=config.max_steps)
        for note in notes:
            events.emit("log", level="info", message=note)
        for level, message in fit.notes:
            events.emit("log", level=level, message=message)
        if fit.refusal is not None:
            raise fit.refusal

        from grpo_studio.engine.train.loop import Trainer

        trainer = Trainer(config, paths, events.emit, launch.shared(control))
        last_status = [0.0]
        guard = FolderGuard(paths, lock, dump_config(config), lambda: {
            **status, "state": "running", "step": events.step, "total_steps": trainer.total_steps,
            "endpoint": server.address if server else None}, lambda: server.key if server else None,
            lambda message: events.emit("log", level="warning", message=message))

        def on_step(step: int) -> None:
            guard.check()  # the folder removed while training: put back what makes it this run
            events.step = step
            if completed:
                completed[0].mark()
            now = time.monotonic()
            if now - last_status[0] >= STATUS_EVERY_S or step == trainer.total_steps:
                last_status[0] = now
                write_status(paths, state="running", step=step, total_steps=trainer.total_steps)

        trainer.setup(resume=resume)
        completed.append(LastCompletedStep(trainer))
        phase.current = None  # loaded: an OOM from here on is not the loading's
        events.step = trainer.step
        if control.stop_requested:  # Ctrl-C while the model loaded: nothing trained, nothing to save
            write_status(paths, state="stopped", step=trainer.step)
            events.emit("log", level="info", message="stopped while loading; nothing was trained or saved")
            events.emit("done", reason="stopped", adapter=None)
            return 0
        write_status(paths, state="running", step=trainer.step, total_steps=trainer.total_steps)
        reason = trainer.train(on_step=on_step, on_pause=lambda paused: write_status(
            paths, state="paused" if paused else "running", step=trainer.step))
        adapter = trainer.save_adapter()
        write_status(paths, state=reason, step=trainer.step)
        events.emit("done", reason=reason, adapter=str(adapter))
        return 0
    except DiskFullError as error:
        return _fail_disk_full(events, paths, reserve, error, echo=quiet)
    except DownloadCancelled as error:  # stopped while downloading: the finished files stay in the cache
        events.emit("log", level="info", message=error.message)
        write_status(paths, state="stopped", step=trainer.step if trainer is not None else 0)
        events.emit("done", reason="stopped", adapter=None)
        return 0
    except StudioError as error:
        return _fail(events, paths, error.kind, error.message, error.hint, error.exit_code, echo=quiet)
    except Exception as error:  # OOM, a full disk or another rank's failure, else a bug: keep the traceback
        peer = launch.peer_failure(paths)  # another rank failed first: its error is the cause
        if peer is not None:
            return _fail(events, paths, peer["kind"], peer["message"], peer["hint"], peer["code"], echo=quiet)
        if launch.lost_a_rank(error):  # a rank vanished without a word: the run crashed
            return launch.report_lost_rank(events, paths, error)
        oom = classify_oom(error, phase.current) if trainer is not None else None
        if oom is not None:
            return _fail_oom(events, paths, trainer, oom, error, completed[0] if completed else None, quiet)
        full = as_disk_full(error, paths.root)
        if full is not None:
            return _fail_disk_full(events, paths, reserve, full, echo=quiet)
        traceback.print_exc(file=sys.stderr)
        return _fail(events, paths, "crash", f"{type(error).__name__}: {error}",
                     f"the traceback is in {paths.log} (or above); please report it", EXIT_CODES["crash"],
                     echo=quiet)
    finally:
        if server is not None:
            server.close()  # after `done`: subscribers receive it before the socket goes
        if printer is not None:
            printer.close()
        reserve.release()
        try:
            events.sync()
        except OSError:
            pass
        events.close()
        lock.close()
        launch.leave()


def _full_before_start(error: OSError, paths: RunPaths) -> int:
    """The disk was full before the event log could take the error: say it on stderr (engine.log)."""
    full = as_disk_full(error, paths.root, "starting the run")
    if full is None:
        raise error
    print(f"error ({full.kind}): {full.message}\nhint: {full.hint}", file=sys.stderr, flush=True)
    return full.exit_code


def _fail_disk_full(events: EventLog, paths: RunPaths, reserve: SpaceReserve, error: DiskFullError,
                    echo: bool) -> int:
    """Free the reserve (room for the error event and status), drop a half-written final adapter, report.
    The message keeps the free space measured when the write failed."""
    reserve.release()
    shutil.rmtree(paths.root / ".adapter.tmp", ignore_errors=True)
    try:
        return _fail(events, paths, error.kind, error.message, error.hint, error.exit_code, echo=echo)
    except (OSError, StudioError):  # not even the reserve was enough: the terminal / engine.log must do
        print(f"error ({error.kind}): {error.message}\nhint: {error.hint}", file=sys.stderr, flush=True)
        return error.exit_code


class _LastPhase:
    """The phase the run is in, from its own events (names the setting to lower when memory runs out)."""

    def __init__(self) -> None:
        self.current: str | None = None

    def handle(self, event: dict) -> None:
        if (phase := event_as(event, Phase)) is not None:
            self.current = phase.get("phase")


def _fail_oom(events: EventLog, paths: RunPaths, trainer, oom: OomFailure, error: BaseException,
              completed: LastCompletedStep | None, quiet: bool) -> int:
    """Free what the failed step held, keep the last completed step as a checkpoint, end as failed (oom)."""
    step = trainer.step
    release_memory(error)
    if completed is not None:
        try:
            _path, note = completed.save_after_oom()
        except Exception as save_error:  # the error event matters more than this checkpoint
            note = f"could not checkpoint the last completed step: {type(save_error).__name__}: {save_error}"
        events.emit("log", level="warning", message=note)
    return _fail(events, paths, "oom", f"at step {step}, {oom.message}", oom.hint, EXIT_CODES["oom"], echo=quiet)


def _fail(events: EventLog, paths: RunPaths, kind: str, message: str, hint: str, code: int,
          echo: bool = False) -> int:
    """End the run as failed. `echo`: also print it (no progress printer does; a detached engine.log needs it)."""
    events.emit("error", kind=kind, message=message, hint=hint)
    if echo:
        print(f"error ({kind}): {message}" + (f"\nhint: {hint}" if hint else ""), file=sys.stderr, flush=True)
    events.emit("done", reason="failed", adapter=None)
    write_status(paths, state="failed")
    return code
