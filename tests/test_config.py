import pytest

from grpo_studio.engine.common.config import TrainConfig, config_from_dict, dump_config, load_config
from grpo_studio.engine.common.errors import ConfigError


def test_defaults_round_trip_through_yaml(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(TrainConfig()))
    assert load_config(path) == TrainConfig()


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": {"num_generation": 4}})
    assert "grpo.num_generation: unknown field (did you mean 'grpo.num_generations'?)" in str(err.value)


def test_wrong_type_and_range_name_the_field_and_range():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": {"num_generations": "eight", "top_p": 1.5}, "lora": {"r": 0}})
    text = str(err.value)
    assert "grpo.num_generations: expected int, got 'eight'" in text
    assert "grpo.top_p: 1.5 is out of range; allowed 0.01 to 1.0" in text
    assert "lora.r: 0 is out of range; allowed 1 to 1024" in text



def test_errors_come_as_fields_and_the_message_lists_the_same():
    """The GUI reads `fields` (no parsing of the message); the CLI prints the message built from them."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": {"top_p": 1.5, "num_generation": 4}, "rewards": [{"name": "math_correct",
                                                                                   "weight": "heavy"}]})
    fields = err.value.fields
    assert sorted(f.path for f in fields) == ["grpo.num_generation", "grpo.top_p", "rewards[0].weight"]
    assert err.value.field_messages()["grpo.top_p"] == "1.5 is out of range; allowed 0.01 to 1.0"
    assert str(err.value).splitlines()[1:4] == [f"  {f.path}: {f.message}" for f in fields]
    assert err.value.field_messages()["rewards[0].weight"] == "expected float, got 'heavy'"


def test_cross_field_errors_name_their_field():
    """Cross-field checks (written as sentences, which the old message parsing dropped) carry their field."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": {"use_adaptive_entropy": True, "entropy_coef_min": 0.5, "entropy_coef_max": 0.1,
                                   "vllm_importance_sampling_clip_min": 3.0,
                                   "vllm_importance_sampling_clip_max": 2.0}})
    messages = err.value.field_messages()
    assert messages["grpo.entropy_coef_min"] == "must not exceed grpo.entropy_coef_max"
    assert "must be less than grpo.vllm_importance_sampling_clip_max" in \
        messages["grpo.vllm_importance_sampling_clip_min"]


def test_an_error_without_fields_reads_as_one_message():
    assert ConfigError("the config must be a mapping").field_messages() == {"": "the config must be a mapping"}

def test_choices_are_checked_with_suggestion():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"grpo": {"loss_type": "dapoo"}})
    assert "not one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo (did you mean 'dapo'?)" in str(err.value)


def test_reward_shorthand_and_scientific_notation():
    config = config_from_dict({"rewards": ["math_correct", {"name": "format_strict", "weight": 0.5}],
                               "optim": {"learning_rate": "1e-5"}})
    assert [(r.name, r.weight) for r in config.rewards] == [("math_correct", 1.0), ("format_strict", 0.5)]
    assert config.optim.learning_rate == pytest.approx(1e-5)


def test_empty_rewards_rejected():
    with pytest.raises(ConfigError, match="at least one reward"):
        config_from_dict({"rewards": []})


def test_gradient_accumulation_is_derived():
    config = config_from_dict({"batch": {"prompts_per_step": 3, "micro_batch_size": 5},
                               "grpo": {"num_generations": 4}})
    assert config.gradient_accumulation_steps == 3  # 12 completions in micro-batches of 5
