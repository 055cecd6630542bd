"""The batch layout helpers (engine/common/groups.py): row r is prompt r // G's, each group contiguous."""
import pytest
import torch

from grpo_studio.engine.common.groups import by_group, group_count, group_rows, per_completion, prompt_of, to_rows


def test_rows_and_prompts_agree_both_ways():
    rows = per_completion(["a", "b", "c"], 2)
    assert rows == ["a", "a", "b", "b", "c", "c"]
    assert [rows[r] for r in group_rows(1, 2)] == ["b", "b"]
    assert [prompt_of(r, 2) for r in range(6)] == [0, 0, 1, 1, 2, 2]
    assert prompt_of(torch.arange(6), 3).tolist() == [0, 0, 0, 1, 1, 1]


def test_tensor_groups_round_trip():
    values = torch.arange(12.0).view(6, 2)
    grouped = by_group(values, 3)
    assert grouped.shape == (2, 3, 2) and grouped[1, 0].tolist() == values[3].tolist()
    assert to_rows(grouped.sum(1), 3).shape == (6, 2)
    assert to_rows(torch.tensor([1.0, 2.0]), 3).tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_a_count_that_does_not_split_into_groups_is_refused():
    assert group_count(8, 4) == 2
    with pytest.raises(ValueError, match="7 rewards do not split into groups of 4"):
        group_count(7, 4)
    with pytest.raises(ValueError):
        by_group(torch.zeros(7), 4)
