"""Settings and data that used to train silently or end in a raw traceback (issue 16, cases 6 and 7)."""
import pytest

from grpo_studio.engine.common.config import DatasetConfig, RewardSpec, TrainConfig, config_from_dict, load_config
from grpo_studio.engine.data.dataset import load_examples, load_rows
from grpo_studio.engine.common.errors import ConfigError, DataError


# ------------------------------------------------------------------------------------ case 6: NaN / inf
@pytest.mark.parametrize("yaml_text,field", [
    ("optim: {learning_rate: .nan}", "optim.learning_rate"),
    ("optim: {learning_rate: .inf}", "optim.learning_rate"),
    ("rewards: [{name: math_correct, weight: .inf}]", "rewards[0].weight"),
    ("rewards: [{name: math_correct, weight: -.inf}]", "rewards[0].weight"),
    ("grpo: {beta: .nan}", "grpo.beta"),
    ("optim: {learning_rate: nan}", "optim.learning_rate"),  # a string YAML does not read as a float
])
def test_nan_and_inf_are_out_of_range(tmp_path, yaml_text, field):
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{field}:" in info.value.message and "out of range" in info.value.message


# ---------------------------------------------------------------------- case 7: empty / non-UTF-8 config
def test_an_empty_config_file_is_refused_not_trained_as_the_demo(tmp_path):
    for text in ("", "\n# only a comment\n"):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match="is empty") as info:
            load_config(path)
        assert "--demo" in info.value.hint


def test_a_config_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes("model: demo\nsystem_prompt: Réponds\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"line 2: not UTF-8 text \(byte 28\)") as info:
        load_config(path)
    assert "UTF-8" in info.value.hint


@pytest.mark.parametrize("value,expected", [("on", "on"), ("off", "off"), ("yes", "on"), ("no", "off"),
                                            ("true", "on"), ("auto", "auto"), ("'on'", "on")])
def test_on_off_settings_accept_yaml_booleans(tmp_path, value, expected):
    path = tmp_path / "config.yaml"
    path.write_text(f"offload_activations: {value}\n")
    assert load_config(path).offload_activations == expected


def test_a_boolean_is_still_refused_where_on_off_is_not_a_choice():
    with pytest.raises(ConfigError, match="grpo.loss_type: expected str"):
        config_from_dict({"grpo": {"loss_type": True}})


def test_new_fields_have_their_defaults_and_ranges():
    config = TrainConfig()
    assert config.checkpoint_keep == 3 and config.reward_timeout_s == 60.0
    with pytest.raises(ConfigError, match="checkpoint_keep"):
        config_from_dict({"checkpoint_keep": -1})
    with pytest.raises(ConfigError, match="reward_timeout_s"):
        config_from_dict({"reward_timeout_s": 0})


# ---------------------------------------------------------------------------------- case 7: datasets
def test_an_empty_jsonl_says_no_rows_not_stopiteration(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="has no rows") as info:
        load_rows(DatasetConfig(path=str(path)))
    assert "StopIteration" not in str(info.value)


def test_a_csv_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("prompt,answer\nfirst,1\nsecond,2\ncafé au lait,3\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"data.csv, line 4: not UTF-8") as info:
        load_rows(DatasetConfig(path=str(path)))
    assert "UTF-8" in info.value.hint and "ArrowInvalid" not in str(info.value)


class _Tokenizer:
    chat_template = None

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[1] * len(t.split()) for t in texts]}


def _examples(tmp_path, answers, rewards=("math_correct",)):
    import json

    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"q{i}", "answer": a}) + "\n" for i, a in enumerate(answers)))
    config = TrainConfig(dataset=DatasetConfig(path=str(path)), rewards=[RewardSpec(r) for r in rewards])
    return load_examples(config, _Tokenizer())


def test_some_missing_answers_are_counted(tmp_path):
    _, report = _examples(tmp_path, ["1", None, "3", None, ""])
    assert any("3 of 5 rows have no answer in column 'answer'" in w and "math_correct" in w
               for w in report.warnings)


def test_all_missing_answers_are_an_error_when_a_reward_needs_them(tmp_path):
    with pytest.raises(DataError, match="empty in all 3 rows.*math_correct"):
        _examples(tmp_path, [None, None, None])
    _, report = _examples(tmp_path, [None, None, None], rewards=("format_strict",))  # nothing needs them
    assert any("3 of 3 rows have no answer" in w for w in report.warnings)
