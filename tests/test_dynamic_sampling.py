"""Dynamic sampling (DAPO): flat groups are replaced by fresh prompts, the batch size never changes, and a
resumed run replays the same draws."""
import torch

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.common.config import RewardSpec
from grpo_studio.engine.train.dynamic_sampling import ScoredBatch, fill_with_signal
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.train.loop import Trainer
from grpo_studio.engine.rewards.scoring import RewardScores
from grpo_studio.engine.rollout.generation import Rollout
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths
from test_checkpoint_resume import adapter_weights, small_config
from test_loop import StopAfter

G, PAD = 2, 0


def fake_batch(first_index, totals, prompt_width, completion_width):
    """A scored batch of len(totals) // G groups; token ids encode (index, row) so rows can be traced."""
    n = len(totals)
    prompt_ids = torch.arange(n)[:, None].repeat(1, prompt_width) + 100 * first_index + 1
    completion_ids = torch.arange(n)[:, None].repeat(1, completion_width) + 100 * first_index + 1
    rollout = Rollout(prompt_ids, torch.ones_like(prompt_ids), completion_ids, torch.ones_like(completion_ids),
                      [f"{first_index}-{r}" for r in range(n)], torch.tensor([r % 3 == 0 for r in range(n)]))
    indices = list(range(first_index, first_index + n // G))
    return ScoredBatch(indices, rollout, RewardScores(totals, {"f": list(totals)}))


def draws(*tables):
    batches = iter([fake_batch(10 * i, t, 3 + i, 2 + i) for i, t in enumerate(tables)])
    return lambda: next(batches)


def test_flat_groups_are_replaced_and_the_batch_keeps_its_size():
    # batch 0: groups (1,1) flat, (0,1) signal; batch 1: (0,0) flat, (1,0) signal
    batch, drawn, stats = fill_with_signal(draws([1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]), 2, G, 3, PAD)
    assert len(drawn) == 2 and stats.as_dict() == {"rounds": 1, "dropped_groups": 2, "flat_groups_kept": 0}
    assert batch.indices == [1, 11] and batch.rollout.size == 4
    assert batch.scores.total == [0.0, 1.0, 1.0, 0.0] and batch.rollout.texts == ["0-2", "0-3", "10-2", "10-3"]
    # widths: prompts left-padded to the wider draw, completions right-padded
    assert batch.rollout.prompt_ids.shape == (4, 4) and batch.rollout.completion_ids.shape == (4, 3)
    assert batch.rollout.prompt_mask[:2, 0].tolist() == [0, 0] and batch.rollout.prompt_ids[2, 0] == 1003
    assert batch.rollout.completion_mask[:2, -1].tolist() == [0, 0]
    assert batch.rollout.truncated.tolist() == [False, True, False, True]


def test_after_max_resample_times_flat_groups_fill_the_batch():
    flat = [0.0, 0.0, 0.0, 0.0]
    batch, drawn, stats = fill_with_signal(draws(flat, flat, [0.0, 1.0, 0.0, 0.0]), 2, G, 1, PAD)
    assert len(drawn) == 2  # 1 + max_resample_times draws, the third is never made
    assert stats.as_dict() == {"rounds": 1, "dropped_groups": 2, "flat_groups_kept": 2}
    assert batch.indices == [0, 1] and batch.rollout.size == 4


def test_unscorable_completions_do_not_count_as_spread():
    batch, drawn, stats = fill_with_signal(draws([None, 1.0, 0.5, 0.5], [1.0, 0.0, 2.0, 2.0]), 1, G, 3, PAD)
    assert stats.rounds == 1 and batch.indices == [10]
    no_resampling, _, stats = fill_with_signal(draws([0.0, 1.0, 0.5, 0.5]), 1, G, 0, PAD)
    assert no_resampling.indices == [0] and stats.dropped_groups == 1


def hard_config(steps=4):
    config = small_config(steps)
    config.rewards = [RewardSpec("math_correct", 1.0)]  # pass/fail only: many groups all 0 at the start
    config.grpo.dynamic_sampling, config.grpo.max_resample_times = True, 2
    return config


def test_dynamic_sampling_in_the_loop_keeps_the_batch_and_survives_resume(tmp_path, monkeypatch):
    sizes = []
    real = Trainer._micro_batches

    def record(self, rollout, mask, advantages):
        sizes.append(rollout.size)
        return real(self, rollout, mask, advantages)

    monkeypatch.setattr(Trainer, "_micro_batches", record)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert run_engine(hard_config(), straight, quiet=True) == 0
    config = hard_config()
    assert sizes == [config.batch.prompts_per_step * config.grpo.num_generations] * 4
    metrics = [e for e in read_events(RunPaths(straight).events) if e["type"] == "metrics"]
    resampled = [m["signal"]["dynamic_sampling"] for m in metrics]
    assert sum(r["rounds"] for r in resampled) > 0  # the task really had flat groups to replace

    assert run_engine(hard_config(), interrupted, control=StopAfter(interrupted, 2), quiet=True) == 0
    assert ckpt.latest_checkpoint(RunPaths(interrupted).checkpoints).name == "step-2"
    assert run_engine(hard_config(), interrupted, resume=True, quiet=True) == 0
    again = [e for e in read_events(RunPaths(interrupted).events) if e["type"] == "metrics"]
    assert [m["step"] for m in again] == [1, 2, 3, 4]
    assert [m["signal"]["dynamic_sampling"] for m in again] == resampled
    assert [m["loss"] for m in again] == [m["loss"] for m in metrics]
    a, b = adapter_weights(straight), adapter_weights(interrupted)
    assert all(torch.equal(a[k], b[k]) for k in a)
