"""`grpo-studio train CONFIG.yaml | --demo`: train headless with a progress bar; the run folder gets the same
config, status and events the app reads.

    grpo-studio train --demo [--steps N]            the built-in CPU demo (no download, no GPU)
    grpo-studio train config.yaml [--run-dir D]     a run from a config file (new folder by default)
    grpo-studio train --resume RUN_DIR              continue a run from its newest checkpoint
    grpo-studio train --run-dir D --resume          the same
    grpo-studio train ... --detach                  the same in the background; `grpo-studio attach RUN` follows
    grpo-studio train config.yaml --run-dir D --overwrite   replace the earlier run in D (only its own files)

A new run never goes into a folder that holds an earlier run or foreign files (run_folder.py), and a resume
refuses settings changed since the checkpoint that it cannot honour (resume_check.py).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.distributed import torchrun
from grpo_studio.engine.train.control import Control

if TYPE_CHECKING:
    from grpo_studio.engine.common.config import TrainConfig

NAME = "train"
HELP = "train with GRPO from a config file (or the built-in demo) in the terminal"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="the run's config file")
    parser.add_argument("--demo", nargs="?", const="tiny", choices=("tiny", "real"), default=None,
                        help="the built-in demo: a tiny model learns addition on the CPU in a minute or two; "
                             "`--demo real`: SmolLM2-135M-Instruct learns arithmetic, evaluated on held-out "
                             "questions (minutes on a CPU)")
    parser.add_argument("--steps", type=int, metavar="N", help="override max_steps")
    parser.add_argument("--eval", metavar="FILE", help="held-out questions (the training data's columns) to score "
                                                       "before, during and after training (sets eval.path)")
    parser.add_argument("--run-dir", type=Path, metavar="D", help="run folder (default: a new folder under "
                                                                  "the runs directory)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                        help="continue from the newest checkpoint of RUN_DIR (or of --run-dir)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a --run-dir that holds an "
                                                                 "earlier run (deletes only GRPO Studio's files)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (events are still written)")
    parser.add_argument("--detach", action="store_true", help="train in the background (it survives this "
                                                              "terminal); follow with `grpo-studio attach RUN`")
    torchrun.add_arguments(parser)  # --gpus N and torchrun's multi-node flags


@dataclass
class TrainJob:
    """What to run, resolved from the arguments (shared with --detach, which starts it in the background)."""
    config: TrainConfig
    run_dir: Path
    resume: bool
    notes: list[str]  # what was decided on the way (changes applied on resume, files --overwrite removed)


def resolve_job(args: argparse.Namespace) -> TrainJob:
    from grpo_studio.engine.common.config import config_from_dict, load_config
    from grpo_studio.engine.common.demo import demo_config
    from grpo_studio.engine.common.real_starter import real_config
    from grpo_studio.engine.common.runs import RunPaths, new_run_dir
    from grpo_studio.engine.run.folder import prepare_new_run

    run_dir = args.run_dir
    resume = bool(args.resume)
    if isinstance(args.resume, str):
        if run_dir is not None and Path(args.resume) != run_dir:
            raise ConfigError("--resume RUN_DIR and --run-dir name different folders", "give only one of them")
        run_dir = Path(args.resume)
    if resume:
        if run_dir is None:
            raise ConfigError("--resume needs the run folder", "use --resume RUN_DIR or --run-dir D --resume")
        if not RunPaths(run_dir).config.is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no config.yaml)", "give the folder of an earlier run")
        config = load_config(RunPaths(run_dir).config)  # a run continues with its own settings
    elif args.demo:
        if args.config:
            raise ConfigError("give either a config file or --demo, not both")
        config = demo_config() if args.demo == "tiny" else real_config()
    elif args.config:
        config = load_config(args.config)
    else:
        raise ConfigError("nothing to train", "give a config file, --demo, or --resume RUN_DIR")
    if args.steps is not None:
        data = config.to_dict()
        data["max_steps"] = args.steps
        config = config_from_dict(data)  # validated like any other value
    if getattr(args, "eval", None):
        data = config.to_dict()
        data["eval"]["path"] = args.eval
        config = config_from_dict(data)
    if resume and getattr(args, "overwrite", False):
        raise ConfigError("--resume continues a run; --overwrite replaces it", "give only one of them")
    notes: list[str] = []
    if run_dir is None:
        run_dir = new_run_dir({"tiny": "demo", "real": "smollm2-arithmetic"}.get(args.demo) or config.model)
    elif resume:
        from grpo_studio.engine.checkpoints.resume_check import check_resume

        notes = check_resume(RunPaths(run_dir).checkpoints, config)
        _check_steps_beyond(args.steps, RunPaths(run_dir).checkpoints)
    else:
        if (Path(run_dir) / "engine.lock").is_file():
            from grpo_studio.engine.run.lock import RunLock

            RunLock(run_dir).acquire().release()  # never clear a folder an engine is training in
        config_file = Path(args.config) if args.config else None
        notes = prepare_new_run(Path(run_dir), config_file, getattr(args, "overwrite", False))
    return TrainJob(config, Path(run_dir), resume, notes)


def _check_steps_beyond(steps: int | None, checkpoints: Path) -> None:
    """`--resume --steps N` must leave something to train: N at or below the step the run resumes from would
    end it at once as "finished 24/10" with max_steps rewritten."""
    from grpo_studio.engine.checkpoints.files import complete_checkpoints

    found = complete_checkpoints(checkpoints)
    if steps is not None and found and steps <= found[-1][0]:
        raise ConfigError(f"--steps {steps} is not beyond step {found[-1][0]}, where the run resumes",
                          f"give --steps above {found[-1][0]} to train further, or leave --steps out to keep "
                          "the run's own max_steps")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.run.runner import run_engine
    from grpo_studio.engine.run.summary import run_summary

    job = resolve_job(args)
    if args.detach:
        return _detach(args, job)
    gpus = torchrun.ranks_per_node(args, job.config)
    under_torchrun = "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ
    if (gpus > 1 or args.nnodes) and not under_torchrun:
        return torchrun.launch(args, job, gpus, _engine_argv(args, job))
    if under_torchrun:
        job.config.gpus = int(os.environ.get("LOCAL_WORLD_SIZE", gpus))  # config.yaml records it: resume reuses it
        if os.environ.get("RANK", "0") != "0":
            args.quiet = True  # one progress bar: rank 0's
    control = Control()
    previous = _stop_on_signals(control, RunPaths(job.run_dir).log)
    try:
        if not args.quiet:
            print(f"run folder: {job.run_dir}")
        code = run_engine(job.config, job.run_dir, resume=job.resume, control=control, quiet=args.quiet,
                          notes=job.notes)
        if not args.quiet:
            print(run_summary(job.run_dir), flush=True)
        return code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _engine_argv(args: argparse.Namespace, job: TrainJob, quiet: bool | None = None) -> list[str]:
    """`grpo-studio` arguments that run this job in its own run folder (for a background engine or a rank)."""
    if job.resume:
        argv = [NAME, "--resume"]
    elif args.demo:
        argv = [NAME, "--demo", args.demo]
    else:
        argv = [NAME, str(Path(args.config).resolve())]
    argv += ["--run-dir", str(Path(job.run_dir).resolve())]
    if args.steps is not None:
        argv += ["--steps", str(args.steps)]
    if args.quiet if quiet is None else quiet:
        argv.append("--quiet")
    return argv


def _detach(args: argparse.Namespace, job: TrainJob) -> int:
    """Start the same job as its own background process, in the folder decided here; return at once."""
    from grpo_studio.engine.common.launcher import start_detached
    from grpo_studio.engine.run.lock import RunLock

    run_dir = job.run_dir.resolve()
    RunLock(run_dir).acquire().release()  # refuse here, while the user watches, if an engine owns the run
    for note in job.notes:
        print(note)
    argv = _engine_argv(args, job, quiet=True)  # nobody watches a progress bar in engine.log
    for flag in ("gpus", *torchrun.MULTI_NODE_FLAGS):  # the background engine starts torchrun itself
        if getattr(args, flag, None) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    pid = start_detached(argv, run_dir)
    print(f"run folder: {run_dir}")
    print(f"engine started in the background (pid {pid}); its output goes to {run_dir / 'engine.log'}")
    from grpo_studio.engine.common.shell_args import in_runs_dir, run_argument

    print(f"follow with: grpo-studio attach {run_argument(run_dir)}    stop with: grpo-studio stop "
          f"{run_argument(run_dir)}")
    if not in_runs_dir(run_dir):
        print("(this run is outside the runs folder, so `grpo-studio runs` does not list it: name it by its path)")
    return 0


def _stop_on_signals(control: Control, log_file: Path) -> dict:
    """Ctrl-C / SIGTERM: finish the current step, save a checkpoint, stop. A second Ctrl-C aborts at once.
    SIGHUP (the terminal closed, the ssh session dropped) stops and saves the same way; the output that
    terminal can no longer take goes to the run's engine.log instead. Returns the handlers it replaced."""
    def handler(signum, frame):
        if control.stop_requested:
            raise KeyboardInterrupt
        print("\nstopping after this step (saving a checkpoint); Ctrl-C again to abort", flush=True)
        control.handle("stop")

    def hangup(signum, frame):
        _output_to(log_file)
        print("\nthe terminal closed (SIGHUP): stopping after this step (saving a checkpoint)", flush=True)
        control.handle("stop")

    signums = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hangup)
    return previous


def _output_to(log_file: Path) -> None:
    """Point stdout and stderr (the file descriptors, so the progress printer follows) at log_file: writing to
    a closed terminal fails (EIO), which would end the run before its checkpoint."""
    try:
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
