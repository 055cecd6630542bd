"""What a finished terminal run says at the end: how the reward moved (first tenth of the steps against the
last tenth), how long it took, where the adapter is and the command to try it. Read from the run's
events.jsonl, so it covers every segment of a resumed run. Torch-free."""
from __future__ import annotations

import shlex
from pathlib import Path

from grpo_studio.engine.common.event_types import Done, Eval, Metrics, Sample, events_of
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _training_seconds(events: list[dict]) -> float:
    """Wall time summed over the run's segments (each from its first event to its `done`), so the hours a
    stopped run sat waiting for `--resume` do not count."""
    total, start = 0.0, None
    for event in events:
        t = event.get("time")
        if not isinstance(t, (int, float)):
            continue
        if start is None:
            start = t
        if event.get("type") == "done":
            total += t - start
            start = None
    if start is not None and events:
        total += float(events[-1].get("time", start)) - start
    return total


def reward_by_step(events: list[dict]) -> dict[int, float]:
    """Mean reward per step (the newest value of a step a resumed run repeated)."""
    rewards: dict[int, float] = {}
    for event in events_of(events, Metrics):
        reward, step = event.get("reward"), event.get("step")
        if reward is not None and step is not None:
            rewards[step] = float(reward)
    return dict(sorted(rewards.items()))


def held_out_lines(events: list[dict]) -> list[str]:
    """Held-out accuracy and reward at the first evaluation (step 0: the base model) -> the latest."""
    evals = events_of(events, Eval)
    if not evals:
        return []
    first, last = evals[0], evals[-1]

    def show(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    return [f"  held-out accuracy ({first.get('num_prompts')} prompts, {first.get('accuracy_reward')} = 1): "
            f"{show(first.get('accuracy'), 2)} at step {first.get('step')} -> {show(last.get('accuracy'), 2)} at "
            f"step {last.get('step')}; mean reward {show(first.get('reward'), 3)} -> {show(last.get('reward'), 3)}"]


def run_summary(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    events = list(read_events(RunPaths(run_dir).events))
    rewards = reward_by_step(events)
    steps = list(rewards)
    trained = {e["step"] for e in events_of(events, Metrics) if "step" in e}
    lines = [f"summary: {len(trained)} steps in {_duration(_training_seconds(events))}"]
    if trained and not steps:
        lines.append("  mean reward: none (every reward function returned None for every completion)")
    if steps:
        tenth = max(1, len(steps) // 10)
        first, last = steps[:tenth], steps[-tenth:]
        mean_first = sum(rewards[s] for s in first) / len(first)
        mean_last = sum(rewards[s] for s in last) / len(last)
        lines.append(f"  mean reward: {mean_first:.3f} over steps {first[0]}-{first[-1]} -> {mean_last:.3f} over "
                     f"steps {last[0]}-{last[-1]}")
    lines += held_out_lines(events)
    done = next(reversed(events_of(events, Done)), None)
    adapter = done.get("adapter") if done is not None else None
    if adapter:
        lines.append(f"  adapter: {adapter}")
        prompt = next((e["prompt"] for e in events_of(events, Sample) if e.get("prompt")), "")
        # a sample's prompt is the rendered text: usable as --prompt only when no chat template wrapped it
        plain = 0 < len(prompt) <= 200 and "\n" not in prompt.strip() and "<" not in prompt
        question = prompt.strip() if plain else "YOUR QUESTION"
        lines.append(f"  try it: grpo-studio chat {shlex.quote(str(run_dir))} --prompt {shlex.quote(question)}")
    elif done is not None:
        lines.append(f"  no adapter: the run {done.get('reason')}")
    return "\n".join(lines)
