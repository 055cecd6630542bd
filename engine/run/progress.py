"""Terminal view of a run's events: a progress bar with ETA and the current mean reward, plus one line per
checkpoint, log message, error and the end. It only consumes events, so `grpo-studio train` (live) and
`grpo-studio attach` (replayed + followed) share it:

    printer = ProgressPrinter()
    for event in events:
        printer.handle(event)
    printer.close()
"""
from __future__ import annotations

import sys
from typing import IO

from tqdm import tqdm

from grpo_studio.engine.common.alarms import ALARM_KEYS
from grpo_studio.engine.common.signal_hints import HintWatcher


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


class ProgressPrinter:
    def __init__(self, file: IO[str] | None = None, mininterval: float = 0.25) -> None:
        self.file = file or sys.stderr
        self.mininterval = mininterval
        self.bar: tqdm | None = None
        self.reward: float | None = None
        self.eta: float | None = None
        self.hints = HintWatcher()  # each learning-signal hint is said once, when it first holds

    def handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "hello":
            where = event.get("gpu_name") or event.get("device") or "?"
            self._write(f"grpo-studio {event.get('version', '')} on {where}")
        elif kind == "phase" and event.get("phase") == "downloading":
            self._write(f"downloading {event.get('what', 'model')} {event.get('repo_id', '')}: "
                        f"{event.get('files', '?')} files, {_size(event.get('missing_bytes'))} to fetch")
        elif kind == "phase" and event.get("phase") == "converting_gguf":
            self._write(f"GGUF {event.get('gguf', '')}: {event.get('stage', '')}...")
        elif kind == "progress" and event.get("phase") == "converting_gguf":
            pass  # hashing a file: a few seconds per GB, the stage line says it
        elif kind == "phase" and event.get("phase") == "loading_model":
            self.close()  # a download bar, if any, is finished
            self._write("loading model and data...")
        elif kind == "metrics":
            self.reward = event.get("reward")
            self._hints(event)
        elif kind == "progress" and event.get("phase") == "downloading":
            self._download(event)
        elif kind == "progress":
            self._progress(event)
        elif kind == "checkpoint":
            self._write(f"checkpoint: step {event.get('step')} -> {event.get('path')}")
        elif kind == "eval":
            accuracy, reward = event.get("accuracy"), event.get("reward")
            self._write(f"held-out (step {event.get('step')}{', base model' if event.get('step') == 0 else ''}): "
                        f"accuracy {'-' if accuracy is None else f'{accuracy:.2f}'} on {event.get('num_prompts')} "
                        f"prompts, mean reward {'-' if reward is None else f'{reward:.3f}'}")
            self._hints(event)  # held-out accuracy feeds an alarm too
        elif kind == "log":
            self._write(f"[{event.get('level', 'info')}] {event.get('message', '')}")
        elif kind == "error":
            self._write(f"error ({event.get('kind')}): {event.get('message')}")
            if event.get("hint"):
                self._write(f"hint: {event['hint']}")
        elif kind == "done":
            self.close()
            adapter = event.get("adapter")
            self._write(f"done: {event.get('reason')}" + (f"; adapter saved to {adapter}" if adapter else ""))

    def _hints(self, event: dict) -> None:
        for hint in self.hints.update(event):
            self._write(f"{'alarm' if hint.key in ALARM_KEYS else 'hint'}: {hint.text}")

    def _download(self, event: dict) -> None:
        """A byte bar: tqdm shows bytes, total, speed; the ETA is the engine's."""
        if self.bar is None or self.bar.unit != "B":
            self.close()
            self.bar = tqdm(total=event.get("total_bytes"), file=self.file, unit="B", unit_scale=True,
                            unit_divisor=1024, dynamic_ncols=True, mininterval=self.mininterval,
                            desc=str(event.get("repo_id") or "download"),
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{rate_fmt}{postfix}]")
        self.bar.set_postfix_str(f"ETA {_duration(event.get('eta_s'))}", refresh=False)
        self.bar.update((event.get("downloaded_bytes") or 0) - self.bar.n)

    def _progress(self, event: dict) -> None:
        if self.bar is not None and self.bar.unit == "B":
            self.close()  # the download bar is done; training steps start
        total, step = event.get("total_steps"), event.get("step") or 0
        if self.bar is None:
            # Start the bar where the run is (attach mid-run, or a resumed run), so its rate stays honest.
            self.bar = tqdm(total=total, initial=max(0, step - 1), file=self.file, unit="step", dynamic_ncols=True,
                            mininterval=self.mininterval,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.eta = event.get("eta_s")
        reward = "?" if self.reward is None else f"{self.reward:.3f}"
        self.bar.set_postfix_str(f"ETA {_duration(self.eta)}, reward {reward}", refresh=False)
        self.bar.update(step - self.bar.n)

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.file)
        else:
            print(text, file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
