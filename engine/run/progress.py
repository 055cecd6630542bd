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
from grpo_studio.engine.common.event_types import Checkpoint, Done, Error, Eval, Hello, Log, Metrics, Phase, Progress
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
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is not None:
            handler(event)

    # ------------------------------------------------------------------ per event type
    def _on_hello(self, e: Hello) -> None:
        self._write(f"grpo-studio {e.get('version', '')} on {e.get('gpu_name') or e.get('device') or '?'}")

    def _on_phase(self, e: Phase) -> None:
        phase = e.get("phase")
        if phase == "downloading":
            self._write(f"downloading {e.get('what', 'model')} {e.get('repo_id', '')}: "
                        f"{e.get('files', '?')} files, {_size(e.get('missing_bytes'))} to fetch")
        elif phase == "converting_gguf":
            self._write(f"GGUF {e.get('gguf', '')}: {e.get('stage', '')}...")
        elif phase == "loading_model":
            self.close()  # a download bar, if any, is finished
            self._write("loading model and data...")

    def _on_progress(self, e: Progress) -> None:
        phase = e.get("phase")
        if phase == "downloading":
            self._download(e)
        elif phase != "converting_gguf":  # hashing a GGUF file: a few seconds per GB, the stage line says it
            self._progress(e)

    def _on_metrics(self, e: Metrics) -> None:
        self.reward = e.get("reward")
        self._hints(e)

    def _on_checkpoint(self, e: Checkpoint) -> None:
        self._write(f"checkpoint: step {e.get('step')} -> {e.get('path')}")

    def _on_eval(self, e: Eval) -> None:
        accuracy, reward = e.get("accuracy"), e.get("reward")
        self._write(f"held-out (step {e.get('step')}{', base model' if e.get('step') == 0 else ''}): "
                    f"accuracy {'-' if accuracy is None else f'{accuracy:.2f}'} on {e.get('num_prompts')} "
                    f"prompts, mean reward {'-' if reward is None else f'{reward:.3f}'}")
        self._hints(e)  # held-out accuracy feeds an alarm too

    def _on_log(self, e: Log) -> None:
        self._write(f"[{e.get('level', 'info')}] {e.get('message', '')}")

    def _on_error(self, e: Error) -> None:
        self._write(f"error ({e.get('kind')}): {e.get('message')}")
        if e.get("hint"):
            self._write(f"hint: {e.get('hint')}")

    def _on_done(self, e: Done) -> None:
        self.close()
        adapter = e.get("adapter")
        self._write(f"done: {e.get('reason')}" + (f"; adapter saved to {adapter}" if adapter else ""))

    def _hints(self, event: Metrics | Eval) -> None:
        for hint in self.hints.update(event):
            self._write(f"{'alarm' if hint.key in ALARM_KEYS else 'hint'}: {hint.text}")

    def _download(self, event: Progress) -> None:
        """A byte bar: tqdm shows bytes, total, speed; the ETA is the engine's."""
        if self.bar is None or self.bar.unit != "B":
            self.close()
            self.bar = tqdm(total=event.get("total_bytes"), file=self.file, unit="B", unit_scale=True,
                            unit_divisor=1024, dynamic_ncols=True, mininterval=self.mininterval,
                            desc=str(event.get("repo_id") or "download"),
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{rate_fmt}{postfix}]")
        self.bar.set_postfix_str(f"ETA {_duration(event.get('eta_s'))}", refresh=False)
        self.bar.update((event.get("downloaded_bytes") or 0) - self.bar.n)

    def _progress(self, event: Progress) -> None:
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
