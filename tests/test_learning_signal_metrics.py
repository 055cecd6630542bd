"""Algorithm options and diagnostics around the loss: TRL's two multi-objective aggregations, the None
total, the step's learning-signal shares on hand-made reward tables, and the options in a real loop."""
import math

import pytest
import torch

from grpo_studio.engine.train.advantages import aggregate_advantages, group_advantages
from grpo_studio.engine.common.demo import demo_config
from grpo_studio.engine.train.diagnostics import flat_groups, step_signal
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.train.step_metrics import UpdateResult, mean_update
from grpo_studio.engine.rewards.scoring import RewardFunction, score_completions
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths

NAN = math.nan


def trl_normalize_then_sum(per_function, weights, group_size):
    """TRL GRPOTrainer's normalize_then_sum, line by line on plain tensors (for comparison)."""
    def nanstd(x, dim=None, keepdim=False):
        if dim is None:
            x, dim = x.reshape(-1), 0
        mean = torch.nanmean(x, dim=dim, keepdim=True)
        var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=keepdim)
        count = (~torch.isnan(x)).sum(dim=dim, keepdim=keepdim)
        return (var * count / (count - 1)).sqrt()

    unscorable = torch.isnan(per_function).all(dim=1)
    grouped = per_function.view(-1, group_size, per_function.shape[1])
    mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
    std_k = nanstd(grouped, dim=1, keepdim=True)
    reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, per_function.shape[1])
    rewards = (reward_k * weights.unsqueeze(0)).nansum(dim=1)
    rewards[unscorable] = NAN
    advantages = (rewards - torch.nanmean(rewards)) / (nanstd(rewards) + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0)


TABLE = torch.tensor([[1.0, 0.2], [0.0, NAN], [1.0, 0.9], [0.0, 0.1],
                      [NAN, NAN], [1.0, 0.5], [1.0, 0.4], [0.0, 0.0]])
WEIGHTS = torch.tensor([1.0, 0.5])


def test_normalize_then_sum_matches_trl():
    ours = aggregate_advantages(TABLE, WEIGHTS, 4, aggregation="normalize_then_sum")
    assert torch.allclose(ours, trl_normalize_then_sum(TABLE, WEIGHTS, 4), atol=1e-5)
    assert ours[4] == 0  # unscorable: no function applied
    summed = aggregate_advantages(TABLE, WEIGHTS, 4, aggregation="sum_then_normalize")
    assert not torch.allclose(ours, summed)  # the two aggregations really differ on this table


def test_sum_then_normalize_is_the_weighted_nansum_then_groups():
    totals = torch.tensor([1.1, 0.0, 1.45, 0.05, NAN, 1.25, 1.2, 0.0])
    ours = aggregate_advantages(TABLE, WEIGHTS, 4, "group", "sum_then_normalize")
    assert torch.allclose(ours, group_advantages(totals, 4, "group"))
    with pytest.raises(ValueError, match="multi_objective_aggregation"):
        aggregate_advantages(TABLE, WEIGHTS, 4, aggregation="mean")


def test_total_is_none_only_when_every_function_returned_none():
    functions = [RewardFunction("a", 1.0, lambda prompts, completions, **kw: [None, 1.0, None]),
                 RewardFunction("b", 2.0, lambda prompts, completions, **kw: [None, None, 0.0])]
    out = score_completions(functions, ["p"] * 3, ["x"] * 3, [[1]] * 3, [{}] * 3)
    assert out.total == [None, 1.0, 0.0]


def test_step_signal_on_a_hand_made_reward_table():
    totals = [0.0, 0.0, 0.0, 0.0,  # flat at 0 (too hard)
              1.0, 1.0, None, 1.0,  # flat at 1 among the scored ones
              0.0, 1.0, 0.0, 0.0,  # signal
              None, None, 0.5, None]  # one scored completion: no spread
    per_function = {"math_correct": [0.0] * 4 + [1.0, 1.0, None, 1.0] + [0.0, 1.0, 0.0, 0.0] + [None] * 4,
                    "format": [None] * 14 + [0.5, 0.5]}
    truncated = [True] * 6 + [False] * 10
    signal = step_signal(totals, 4, per_function, truncated, {"format": [False] * 15 + [True]})
    assert flat_groups(totals, 4) == [True, True, False, True]
    assert signal["zero_spread_groups"] == 0.75
    assert signal["zero_spread_reward"] == pytest.approx((0 * 4 + 1.0 * 3 + 0.5) / 8)
    assert signal["truncated"] == 6 / 16
    assert signal["rewards"]["math_correct"] == {"none": 5 / 16, "failed": 0.0, "zero": 7 / 11}
    assert signal["rewards"]["format"] == {"none": 14 / 16, "failed": 1 / 16, "zero": 0.0}
    assert step_signal([], 4, {}, [])["truncated"] is None


def test_a_step_reports_the_mean_of_its_updates():
    updates = [UpdateResult(1.0, 0.1, 0.0, 2.0, 1e-3, 1.5), UpdateResult(3.0, 0.3, 0.5, 4.0, 1e-3, None)]
    assert mean_update(updates) == pytest.approx(UpdateResult(2.0, 0.2, 0.25, 3.0, 1e-3, 1.5))


def test_gspo_truncation_mask_and_normalize_then_sum_in_the_loop(tmp_path):
    config = demo_config(steps=2)
    config.batch.prompts_per_step, config.log_samples_every = 4, 1
    config.grpo.importance_sampling_level, config.grpo.num_iterations = "sequence", 2
    config.grpo.mask_truncated_completions = True
    config.grpo.multi_objective_aggregation = "normalize_then_sum"
    config.grpo.max_completion_length = 4  # short: some completions are cut before EOS
    assert run_engine(config, tmp_path / "run", quiet=True) == 0
    metrics = [e for e in read_events(RunPaths(tmp_path / "run").events) if e["type"] == "metrics"]
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        signal = m["signal"]
        assert 0 < signal["truncated"] < 1 and 0 <= signal["zero_spread_groups"] <= 1
        assert 0 < signal["entropy"] < math.log(64) and math.isfinite(m["loss"])
        assert set(signal["rewards"]) == set(m["rewards"]) and "dynamic_sampling" not in signal


def test_the_advantages_total_is_the_scored_total():
    """One rule for a completion's total (weighted, Nones skipped, None when nothing scored): the reward
    table the advantages sum gives what score_completions reported."""
    from grpo_studio.engine.train.advantages import weighted_total
    from grpo_studio.engine.rewards.scoring import weighted_sum

    rows = [[1.0, None, 2.0], [None, None, None], [0.5, -1.0, None], [None, 3.0, None]]
    weights = [1.0, 0.5, -2.0]
    table = torch.tensor([[NAN if v is None else v for v in row] for row in rows])
    totals = weighted_total(table, torch.tensor(weights)).tolist()
    expected = [weighted_sum(row, weights) for row in rows]
    assert expected == [-3.0, None, 0.0, 1.5]
    assert [None if math.isnan(t) else t for t in totals] == expected
