"""One training run in one run folder: the process-level wrapper around the Trainer.

`run_engine` owns the run folder (config.yaml, status.json, events.jsonl, the lock), sends the hello /
done events, turns failures into an `error` event plus an exit code (a StudioError names what to fix;
CUDA out-of-memory gets its own hint; anything else is a crash with the traceback on stderr), and writes
the final adapter. The terminal progress bar is just another listener of the same events.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

from grpo_studio import __version__
from grpo_studio.engine.config import TrainConfig, dump_config
from grpo_studio.engine.control import Control
from grpo_studio.engine.errors import EXIT_CODES, StudioError
from grpo_studio.engine.events import EventLog
from grpo_studio.engine.lock import RunLock
from grpo_studio.engine.runs import RunPaths, atomic_write_text, write_status
from grpo_studio.engine.server import EngineServer

OOM_HINT = ("lower batch.micro_batch_size, grpo.max_completion_length or grpo.num_generations, turn on "
            "load_in_4bit and offload_activations, or run `grpo-studio estimate` to see what fits")
STATUS_EVERY_S = 1.0  # status.json is rewritten (with fsync) at most this often; events carry every step


def run_engine(config: TrainConfig, run_dir: Path, *, resume: bool = False, control: Control | None = None,
               quiet: bool = False) -> int:
    """Train `config` in `run_dir`; returns the process exit code (0 = finished or stopped)."""
    import torch

    from grpo_studio.engine import distributed_launch

    if not distributed_launch.join(config, run_dir):  # a rank > 0 under torchrun: trains, owns nothing
        return distributed_launch.run_other_rank(config, run_dir, resume=resume)
    paths = RunPaths(Path(run_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    lock = RunLock(paths.root).acquire()  # first: a second engine on this folder stops here
    events = EventLog(paths.events)
    control = control or Control()
    printer = None
    if not quiet:
        from grpo_studio.engine.progress import ProgressPrinter

        printer = ProgressPrinter()
        events.add_listener(printer.handle)
    atomic_write_text(paths.config, dump_config(config))  # what this process runs (a resume may add --steps)
    status = {"pid": os.getpid(), "state": "starting", "started": time.time(), "step": 0,
              "total_steps": config.max_steps}
    write_status(paths, **status)
    server = None
    try:
        server = EngineServer(paths, events, control).start()
    except OSError as error:  # the run still trains; only live attach / commands are unavailable
        events.emit("log", level="warning", message=f"no control socket ({error}); stop with Ctrl-C or SIGTERM")
    device = "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"
    gpu_name = torch.cuda.get_device_name(0) if device == "cuda" else None
    gpu_total = torch.cuda.get_device_properties(0).total_memory if device == "cuda" else None
    events.emit("hello", version=__version__, device=device, gpu_name=gpu_name, gpu_total=gpu_total,
                config_hash=config.config_hash(), total_steps=config.max_steps)

    from grpo_studio.engine.loop import Trainer

    trainer = Trainer(config, paths, events.emit, distributed_launch.shared(control))
    last_status = [0.0]

    def on_step(step: int) -> None:
        events.step = step
        now = time.monotonic()
        if now - last_status[0] >= STATUS_EVERY_S or step == trainer.total_steps:
            last_status[0] = now
            write_status(paths, state="running", step=step, total_steps=trainer.total_steps)

    try:
        trainer.setup(resume=resume)
        events.step = trainer.step
        write_status(paths, state="running", step=trainer.step, total_steps=trainer.total_steps)
        reason = trainer.train(on_step=on_step, on_pause=lambda paused: write_status(
            paths, state="paused" if paused else "running", step=trainer.step))
        adapter = trainer.save_adapter()
        write_status(paths, state=reason, step=trainer.step)
        events.emit("done", reason=reason, adapter=str(adapter))
        return 0
    except StudioError as error:
        return _fail(events, paths, error.kind, error.message, error.hint, error.exit_code, echo=quiet)
    except torch.OutOfMemoryError as error:
        first_line = str(error).splitlines()[0] if str(error) else "CUDA out of memory"
        return _fail(events, paths, "oom", f"out of GPU memory at step {trainer.step}: {first_line}", OOM_HINT,
                     EXIT_CODES["oom"], echo=quiet)
    except Exception as error:  # a bug or an unexpected library failure: keep the traceback for the report
        peer = distributed_launch.peer_failure(paths)  # another rank failed first: its error is the cause
        if peer is not None:
            return _fail(events, paths, peer["kind"], peer["message"], peer["hint"], peer["code"], echo=quiet)
        if distributed_launch.lost_a_rank(error):  # a rank vanished without a word: the run crashed
            return distributed_launch.report_lost_rank(events, paths, error)
        traceback.print_exc(file=sys.stderr)
        return _fail(events, paths, "crash", f"{type(error).__name__}: {error}",
                     f"the traceback is in {paths.log} (or above); please report it", EXIT_CODES["crash"],
                     echo=quiet)
    finally:
        if server is not None:
            server.close()  # after `done`: subscribers receive it before the socket goes
        if printer is not None:
            printer.close()
        events.sync()
        events.close()
        lock.close()
        distributed_launch.leave()


def _fail(events: EventLog, paths: RunPaths, kind: str, message: str, hint: str, code: int,
          echo: bool = False) -> int:
    """End the run as failed. `echo`: also print it (no progress printer does; a detached engine.log needs it)."""
    events.emit("error", kind=kind, message=message, hint=hint)
    if echo:
        print(f"error ({kind}): {message}" + (f"\nhint: {hint}" if hint else ""), file=sys.stderr, flush=True)
    events.emit("done", reason="failed", adapter=None)
    write_status(paths, state="failed")
    return code
