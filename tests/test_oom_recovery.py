"""Recovery from out-of-memory (injected on the CPU with GRPO_STUDIO_INJECT_OOM at a chosen step and phase):
the engine halves the generation batch or the micro-batch and redoes the same step from its start, so the run
finishes with the adapter of a run started with the smaller settings; config.yaml keeps them for a resume;
after three recoveries the `oom` error stands as before."""
import pytest
import torch

from grpo_studio.engine.train import loop
from grpo_studio.engine.common.config import load_config
from grpo_studio.engine.common.errors import EXIT_CODES
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.train.oom_recovery import INJECT_ENV, OomInjector
from grpo_studio.engine.run.runner import run_engine
from test_checkpoint_resume import adapter_weights, small_config
from test_loop import StopAfter

ROWS = 32  # small_config: 4 prompts x 8 generations; micro-batch 12


def events_of(run):
    return list(read_events(RunPaths(run).events))


def recoveries(run):
    return [e["recovery"] for e in events_of(run) if e["type"] == "log" and "recovery" in e]


def rewards(run):
    return [e["reward"] for e in events_of(run) if e["type"] == "metrics"]


def assert_same_adapter(a_run, b_run):
    a, b = adapter_weights(a_run), adapter_weights(b_run)
    assert a.keys() == b.keys() and a
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # it really trained
    # Float rounding of other batch shapes, through Adam (whose step is ~lr x sign for tiny gradients): seen up
    # to ~2e-4 of a tensor's scale in single elements; a lost or repeated step moves lora_B by about a quarter
    # of its scale.
    for key in a:
        scale = a[key].abs().max().item()
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-3 * scale)
        assert (b[key] - a[key]).norm() <= 1e-4 * a[key].norm()


def spy_batch_sizes(monkeypatch):
    """(step, generation batch_size) per generate call and (step, rows) per micro-batch the loss sees."""
    seen = {"generate": [], "micro": []}
    generate, micro_batch_loss = loop.generate, loop.micro_batch_loss

    def spy_generate(*args, **kwargs):
        seen["generate"].append(kwargs["batch_size"])
        return generate(*args, **kwargs)

    def spy_loss(hidden, *args, **kwargs):
        seen["micro"].append(hidden.shape[0])
        return micro_batch_loss(hidden, *args, **kwargs)

    monkeypatch.setattr(loop, "generate", spy_generate)
    monkeypatch.setattr(loop, "micro_batch_loss", spy_loss)
    return seen


@pytest.mark.slow  # two short engine runs
def test_recovered_run_equals_a_run_started_with_the_smaller_settings(tmp_path, monkeypatch):
    smaller, recovered = tmp_path / "smaller", tmp_path / "recovered"
    config = small_config(steps=4)
    config.batch.generation_batch_size, config.batch.micro_batch_size = ROWS // 2, 6
    assert run_engine(config, smaller, quiet=True) == 0

    seen = spy_batch_sizes(monkeypatch)
    monkeypatch.setenv(INJECT_ENV, "generating@2,optimizing@3")
    assert run_engine(small_config(steps=4), recovered, quiet=True) == 0

    assert recoveries(recovered) == [
        {"phase": "generating", "setting": "batch.generation_batch_size", "old": ROWS, "new": ROWS // 2,
         "attempt": 1, "step": 2},
        {"phase": "optimizing", "setting": "batch.micro_batch_size", "old": 12, "new": 6, "attempt": 2, "step": 3}]
    # the smaller settings reached the loop: steps 1, 2 (failed), 2 again, 3 (failed in optimizing), 3 again, 4
    assert seen["generate"] == [None, None] + [ROWS // 2] * 4
    # micro-batches: steps 1 and 2 at 12; step 3's first try fails after one; its redo and step 4 at 6
    assert seen["micro"] == [12, 12, 8] * 2 + [12] + [6, 6, 6, 6, 6, 2] * 2
    # no step lost or changed: every step once, the same rewards, the same adapter
    assert [e["step"] for e in events_of(recovered) if e["type"] == "metrics"] == [1, 2, 3, 4]
    assert rewards(recovered) == rewards(smaller)
    assert_same_adapter(smaller, recovered)
    saved = load_config(RunPaths(recovered).config)  # a resume continues with the smaller settings
    assert (saved.batch.generation_batch_size, saved.batch.micro_batch_size) == (ROWS // 2, 6)


@pytest.mark.slow
def test_a_resume_after_a_recovery_keeps_the_smaller_settings(tmp_path, monkeypatch):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert run_engine(small_config(steps=4), straight, quiet=True) == 0
    monkeypatch.setenv(INJECT_ENV, "optimizing@1")
    assert run_engine(small_config(steps=4), run, control=StopAfter(run, 2), quiet=True) == 0
    monkeypatch.delenv(INJECT_ENV)
    seen = spy_batch_sizes(monkeypatch)
    config = load_config(RunPaths(run).config)  # what `grpo-studio train --resume` continues with
    assert config.batch.micro_batch_size == 6
    assert run_engine(config, run, resume=True, quiet=True) == 0
    assert set(seen["micro"]) == {6, 2}  # 32 rows in micro-batches of 6
    assert rewards(run) == rewards(straight)
    assert_same_adapter(straight, run)  # a smaller micro-batch is the same update


def test_after_three_recoveries_the_oom_error_stands(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv(INJECT_ENV, "generating@2x4")
    assert run_engine(small_config(steps=3), run, quiet=True) == EXIT_CODES["oom"]
    assert [(r["old"], r["new"]) for r in recoveries(run)] == [(32, 16), (16, 8), (8, 4)]
    [error] = [e for e in events_of(run) if e["type"] == "error"]
    assert error["kind"] == "oom" and "at step 2" in error["message"] and "injected" in error["message"]
    assert "batch.generation_batch_size" in error["hint"]
    assert load_config(RunPaths(run).config).batch.generation_batch_size == 4


def test_the_injection_spec_is_checked():
    inject = OomInjector("generating@2, optimizing@3x2")
    inject(1, "generating")
    inject(2, "optimizing")
    with pytest.raises(torch.OutOfMemoryError):
        inject(2, "generating")
    inject(2, "generating")  # once only
    for _ in range(2):
        with pytest.raises(torch.OutOfMemoryError):
            inject(3, "optimizing")
    inject(3, "optimizing")
    for bad in ("generating", "scoring@2", "optimizing@two"):
        with pytest.raises(ValueError, match="GRPO_STUDIO_INJECT_OOM"):
            OomInjector(bad)
