"""The GRPO loop: it learns the demo task, micro-batching is exact, advantages follow TRL, the run ends
cleanly on stop / errors."""
import math

import pytest
import torch

from grpo_studio.engine.train.advantages import group_advantages
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.train.loop import Trainer
from grpo_studio.engine.train.optim import lr_factor
from grpo_studio.engine.train.prompt_sampler import PromptSampler
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from grpo_studio.kernels import grpo_loss


def metrics_of(run_dir):
    return [e for e in read_events(RunPaths(run_dir).events) if e["type"] == "metrics"]


def test_grpo_learns_the_demo_task(tmp_path):
    config = demo_config(steps=100)
    assert run_engine(config, tmp_path / "run", quiet=True) == 0
    metrics = metrics_of(tmp_path / "run")
    correct = [m["rewards"]["math_correct"]["mean"] for m in metrics]
    assert config.grpo.beta == 0 and all(m["kl"] is None for m in metrics)  # no reference pass: not measured
    first, last = sum(correct[:20]) / 20, sum(correct[-20:]) / 20
    assert first < 0.45  # the shipped warm-up starts near 0.2
    assert last > first + 0.15, (first, last)


def test_advantages_match_trl_formula():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(rewards, 4, "group")
    first = rewards[:4]
    expected = (first - first.mean()) / (first.std() + 1e-4)  # unbiased std, as TRL
    assert torch.allclose(adv[:4], expected)
    assert torch.equal(adv[4:], torch.zeros(4))  # equal rewards: no signal
    batch = group_advantages(rewards, 4, "batch")
    assert torch.allclose(batch[:4], (first - first.mean()) / (rewards.std() + 1e-4))
    assert torch.allclose(group_advantages(rewards, 4, "none")[:4], first - first.mean())


def test_advantages_skip_unscorable_completions():
    rewards = torch.tensor([1.0, math.nan, 0.0, 1.0])
    adv = group_advantages(rewards, 4, "group")
    assert adv[1] == 0
    valid = torch.tensor([1.0, 0.0, 1.0])
    assert torch.allclose(adv[[0, 2, 3]], (valid - valid.mean()) / (valid.std() + 1e-4))
    with pytest.raises(ValueError):
        group_advantages(torch.zeros(6), 4)


def test_lr_schedules():
    assert lr_factor(0, 10, 100, "constant") == 0.0 and lr_factor(5, 10, 100, "constant") == 0.5
    assert lr_factor(50, 10, 100, "constant") == 1.0
    assert lr_factor(10, 10, 110, "linear") == 1.0 and lr_factor(60, 10, 110, "linear") == 0.5
    assert lr_factor(110, 10, 110, "linear") == 0.0
    assert lr_factor(60, 10, 110, "cosine") == pytest.approx(0.5)


def test_sampler_covers_epochs_and_restores_its_position():
    sampler = PromptSampler(10, 4, seed=3)
    seen = sampler.next() + sampler.next() + sampler.next()[:2]
    assert sorted(seen) == list(range(10))  # one full epoch, no repeats
    state = sampler.state_dict()
    expected = [sampler.next() for _ in range(3)]
    again = PromptSampler(10, 4, seed=3)
    again.load_state_dict(state)
    assert [again.next() for _ in range(3)] == expected


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "dr_grpo", "bnpo"])
def test_micro_batches_add_up_to_the_full_batch(tmp_path, loss_type):
    config = demo_config(steps=1)
    config.grpo.loss_type = loss_type
    trainer = Trainer(config, RunPaths(tmp_path), lambda *a, **k: None)
    trainer.setup()
    with torch.no_grad():  # give the adapter some weight so gradients reach every LoRA matrix
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    from grpo_studio.engine.rollout.generation import generate

    rollout = generate(trainer.model, trainer.tokenizer, [e.prompt_ids for e in trainer.examples[:6]],
                       num_generations=4, max_completion_length=6)
    advantages = torch.randn(rollout.size)

    def grads(micro_size):
        trainer.config.batch.micro_batch_size = micro_size
        trainer.model.zero_grad(set_to_none=True)
        weight = trainer.model.get_base_model().lm_head.weight
        for mb in trainer._micro_batches(rollout, rollout.completion_mask, advantages):
            out = grpo_loss(trainer._completion_hidden(mb), weight, mb.completion_ids, mb.completion_mask,
                            mb.advantages, loss_type=loss_type, max_completion_length=6)
            (out.loss * mb.weight).backward()
        return [p.grad.clone() for p in trainer.params]

    full, split = grads(24), grads(5)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(full, split))
    assert any(g.abs().sum() > 0 for g in full)


class StopAfter(Control):
    """Asks the loop to stop once `step` steps are on record (read from the event file the loop writes)."""

    def __init__(self, run_dir, step):
        super().__init__()
        self.events, self.step = RunPaths(run_dir).events, step

    @property
    def stop_requested(self):
        return super().stop_requested or any(
            e["type"] == "progress" and e["step"] >= self.step for e in read_events(self.events))


def test_stop_request_saves_a_checkpoint_and_ends_stopped(tmp_path):
    run = tmp_path / "run"
    assert run_engine(demo_config(steps=10), run, control=StopAfter(run, 3), quiet=True) == 0
    events = list(read_events(RunPaths(run).events))
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "stopped"
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [3]
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert read_status(RunPaths(run))["state"] == "stopped"


def test_user_error_becomes_an_error_event_and_exit_code(tmp_path, capsys):
    config = demo_config(steps=2)
    config.model = str(tmp_path / "no-such-model")
    assert run_engine(config, tmp_path / "run", quiet=True) == 2
    printed = capsys.readouterr().err  # quiet (a detached engine's log) still says what went wrong
    assert "error (config)" in printed and "no-such-model" in printed and "hint:" in printed
    events = list(read_events(RunPaths(tmp_path / "run").events))
    error = next(e for e in events if e["type"] == "error")
    assert error["kind"] == "config" and "no-such-model" in error["message"] and error["hint"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "failed"
    assert read_status(RunPaths(tmp_path / "run"))["state"] == "failed"


def test_unexpected_failure_is_a_crash_event(tmp_path, monkeypatch, capsys):
    def boom(self):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Trainer, "train_step", boom)
    assert run_engine(demo_config(steps=2), tmp_path / "run", quiet=True) == 6
    error = next(e for e in read_events(RunPaths(tmp_path / "run").events) if e["type"] == "error")
    assert error["kind"] == "crash" and "kaboom" in error["message"]
    assert "Traceback" in capsys.readouterr().err


def test_out_of_memory_gets_a_hint(tmp_path, monkeypatch):
    def oom(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "train_step", oom)
    assert run_engine(demo_config(steps=2), tmp_path / "run", quiet=True) == 5
    error = next(e for e in read_events(RunPaths(tmp_path / "run").events) if e["type"] == "error")
    assert error["kind"] == "oom" and "micro_batch_size" in error["hint"]


def test_kl_reference_reuse_checkpointing_and_8bit_adam_run_together(tmp_path):
    config = demo_config(steps=3)
    config.grpo.beta, config.grpo.num_iterations = 0.04, 2
    config.batch.prompts_per_step, config.batch.micro_batch_size = 4, 12
    config.gradient_checkpointing = True
    config.optim.optimizer, config.optim.lr_scheduler_type = "adamw_8bit", "cosine"
    assert run_engine(config, tmp_path / "run", quiet=True) == 0
    metrics = metrics_of(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    # the adapter moves away from the base after the first updates, so the KL to the reference shows up
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-6) and metrics[-1]["kl"] > 0
    assert all(m["grad_norm"] is not None and m["grad_norm"] >= 0 for m in metrics)


@pytest.mark.parametrize("backend, says", [("fast", "rollouts: fast: generation in float32, LoRA merged"),
                                           ("hf", "rollouts: hf generate")])
def test_the_log_says_once_how_rollouts_are_generated(tmp_path, backend, says):
    config = demo_config(steps=3)
    config.grpo.generation_backend = backend
    assert run_engine(config, tmp_path / "run", quiet=True) == 0
    said = [e["message"] for e in read_events(RunPaths(tmp_path / "run").events)
            if e["type"] == "log" and e["message"].startswith("rollouts:")]
    assert len(said) == 1 and said[0].startswith(says), said
