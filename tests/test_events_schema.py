"""Every event a run writes has the protocol's shape, and sequence numbers never skip, across a resume too."""
import threading

import pytest

from grpo_studio.engine.train.control import Control
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.event_types import typed_event
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.protocol import DONE_REASONS, ERROR_KINDS, EVENT_FIELDS, PHASES
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from test_checkpoint_resume import small_config
from test_loop import StopAfter


def event_problems(event) -> list[str]:
    """What is wrong with an event by the protocol's shapes (an empty list: nothing)."""
    if not isinstance(event, dict):
        return ["event is not a JSON object"]
    problems = [f"missing '{key}'" for key in ("type", "seq", "time") if key not in event]
    kind = event.get("type")
    if kind not in EVENT_FIELDS:
        return problems + [f"unknown event type {kind!r}"]
    problems += [f"{kind}: missing '{key}'" for key in EVENT_FIELDS[kind] if key not in event]
    problems += [f"{kind}: '{key}' does not fit its type" for key in event if key not in typed_event(event)]
    if kind == "phase" and event.get("phase") not in PHASES:
        problems.append(f"phase: unknown phase {event.get('phase')!r}")
    if kind == "error" and event.get("kind") not in ERROR_KINDS:
        problems.append(f"error: unknown kind {event.get('kind')!r}")
    if kind == "done" and event.get("reason") not in DONE_REASONS:
        problems.append(f"done: unknown reason {event.get('reason')!r}")
    return problems


def test_events_follow_the_protocol_across_stop_and_resume(tmp_path):
    run = tmp_path / "run"
    config = small_config(steps=4)
    config.checkpoint_every = 2
    config.log_samples_every = 1
    config.eval.path, config.eval.num_prompts = str(tmp_path / "held_out.jsonl"), 4  # eval events too
    (tmp_path / "held_out.jsonl").write_text('{"prompt": "7+8=", "answer": "15"}\n{"prompt": "9+9=", "answer": "18"}\n')
    assert run_engine(config, run, control=StopAfter(run, 3), quiet=True) == 0
    assert run_engine(config, run, resume=True, quiet=True) == 0
    events = list(read_events(RunPaths(run).events))

    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(event_problems(e) == [] for e in events), [(e, event_problems(e)) for e in events if event_problems(e)]
    kinds = {e["type"] for e in events}
    assert kinds >= set(EVENT_FIELDS) - {"error"}
    assert events[0]["type"] == "hello" and events[-1]["type"] == "done"
    assert all("step" in e for e in events if e["type"] in ("metrics", "progress", "memory", "sample"))

    metrics = [e for e in events if e["type"] == "metrics"]
    m = metrics[-1]
    assert set(m["rewards"]) == {"math_correct", "answer_format"}
    assert isinstance(m["reward"], float) and isinstance(m["loss"], float) and m["lr"] > 0
    assert m["completion_length"]["max"] >= m["completion_length"]["mean"] > 0
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total_steps"] == 4 and progress[-1]["eta_s"] == 0
    assert all(p["tokens_per_s"] > 0 for p in progress)
    memory = [e for e in events if e["type"] == "memory"][-1]
    assert memory["gpu_allocated"] is None and memory["rss"] > 50 * 2**20 and memory["offloaded"] == 0
    sample = [e for e in events if e["type"] == "sample"][-1]
    assert sample["prompt"].endswith("=") and isinstance(sample["completion"], str)
    group = [e for e in events if e["type"] == "group"][-1]
    assert group["prompt"] == [e for e in events if e["type"] == "sample"][-1]["prompt"]
    assert len(group["completions"]) == group["group_size"] == config.grpo.num_generations
    totals = [c["reward"] for c in group["completions"]]
    assert totals == sorted(totals, reverse=True)  # best to worst
    first = group["completions"][0]
    assert set(first) == {"completion", "reward", "rewards", "advantage", "length", "truncated"}
    assert set(first["rewards"]) == {"math_correct", "answer_format"} and first["length"] >= 1
    assert sum(c["advantage"] for c in group["completions"]) == pytest.approx(0.0, abs=1e-5)
    assert all(isinstance(m["signal"]["repeated_ngrams"], float) for m in metrics)
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 3, 4]
    held_out = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in held_out] == [0, 4] and held_out[-1]["num_prompts"] == 2
    assert 0 <= held_out[-1]["accuracy"] <= 1 and set(held_out[-1]["rewards"]) == {"math_correct", "answer_format"}
    status = read_status(RunPaths(run))
    assert status["state"] == "finished" and status["step"] == 4 and status["pid"] > 0


def test_failed_run_events_follow_the_protocol(tmp_path):
    config = small_config(steps=2)
    config.model = str(tmp_path / "nowhere")
    run_engine(config, tmp_path / "run", quiet=True)
    events = list(read_events(RunPaths(tmp_path / "run").events))
    assert [e["type"] for e in events][0] == "hello" and events[-1]["type"] == "done"
    assert all(event_problems(e) == [] for e in events)


class PauseAfter(Control):
    """Pauses the real loop once `step` steps are on record; while paused asks for a checkpoint (which must be
    written at once, not after resume), then resumes."""

    def __init__(self, run_dir, step):
        super().__init__()
        self.events, self.step, self.pauses = RunPaths(run_dir).events, step, 0

    @property
    def paused(self):
        if not self.pauses and any(e["type"] == "progress" and e["step"] >= self.step
                                   for e in read_events(self.events)):
            self.pauses = 1
            self.handle("pause")
        return super().paused

    def wait_while_paused(self, poll_s=0.2, on_save=None):
        self.handle("save_now")
        threading.Timer(1.0, self.handle, ("resume",)).start()
        return super().wait_while_paused(0.01, on_save)


def test_pause_is_a_phase_and_save_now_while_paused_saves_that_step(tmp_path):
    run = tmp_path / "run"
    assert run_engine(small_config(steps=4), run, control=PauseAfter(run, 2), quiet=True) == 0
    events = list(read_events(RunPaths(run).events))
    assert all(event_problems(e) == [] for e in events)
    kinds = [(e["type"], e.get("phase"), e.get("step")) for e in events]
    paused = kinds.index(("phase", "paused", 2))
    saved = kinds.index(("checkpoint", None, 2))
    resumed = kinds.index(("phase", "generating", 3))
    assert paused < saved < resumed  # saved during the pause, at the step it paused at
    assert ("phase", "paused", 2) in kinds[saved:resumed]  # and still paused after the save
