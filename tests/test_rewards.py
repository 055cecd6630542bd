"""Loading, calling, checking and weighting reward functions; the try-rewards command."""
from __future__ import annotations

import json
import math
import textwrap

import pytest

from grpo_studio.engine.cli import main as cli
from grpo_studio.engine.common.config import RewardSpec
from grpo_studio.engine.common.errors import ConfigError, RewardError
from grpo_studio.engine.rewards.scoring import (RewardFunction, as_conversation, load_reward_functions,
                                       score_completions)

TRL_STYLE = '''
import re


def contains_answer(prompts, completions, completion_ids=None, **kwargs):
    """1 when the completion contains the row's answer."""
    seen.append({"prompts": prompts, "completions": completions, "ids": completion_ids, **kwargs})
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [1.0 if str(a) in t else 0.0 for t, a in zip(texts, kwargs["answer"])]


def only_long(prompts, completions, **kwargs):
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [None if len(t) < 5 else 0.5 for t in texts]


def named_columns(prompts, completions, completion_ids, difficulty):
    return [float(d) for d in difficulty]


seen = []
'''


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(*specs, **kwargs):
    return load_reward_functions([RewardSpec(*s) if isinstance(s, tuple) else RewardSpec(s) for s in specs],
                                 **kwargs)


def fn(name, body, weight=1.0):
    return RewardFunction(name=name, weight=weight, fn=body)


def score(functions, completions, prompts=None, columns=None):
    n = len(completions)
    return score_completions(functions, prompts or ["p"] * n, completions, [[1, 2]] * n, columns or [{}] * n)


# ---------------------------------------------------------------------------------------------------------
# Loading


def test_builtins_load_by_name_with_weights():
    functions = load("math_correct", ("format_strict", 0.5))
    assert [(f.name, f.weight) for f in functions] == [("math_correct", 1.0), ("format_strict", 0.5)]
    assert functions[0].description.startswith("1 if the final answer")


def test_unknown_builtin_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown reward function 'math_corect' \\(did you mean 'math_correct'"):
        load("math_corect")


def test_length_builtin_follows_max_completion_length():
    [length] = load("length", max_completion_length=100)
    out = score([length], ["a", "b", "c"], columns=[{}] * 3)
    assert out.total == [0.0, 0.0, 0.0]
    ids = [[0] * 50, [0] * 90, [0] * 100]
    assert score_completions([length], ["p"] * 3, ["a"] * 3, ids, [{}] * 3).total == [0.0, -0.6, -1.0]


def test_custom_file_trl_style(tmp_path):
    path = write(tmp_path, "my_rewards.py", TRL_STYLE)
    functions = load((f"{path}:contains_answer", 2.0), (f"{path}:only_long", 1.0))
    assert [f.name for f in functions] == ["contains_answer", "only_long"]
    assert functions[0].description == "1 when the completion contains the row's answer."
    columns = [{"prompt": "2+3=", "answer": "5", "level": 1}, {"prompt": "1+1=", "answer": "2", "level": 2}]
    out = score_completions(functions, ["2+3=", "1+1="], ["it is 5", "3"], [[7, 8], [9]], columns)
    assert out.per_function == {"contains_answer": [1.0, 0.0], "only_long": [0.5, None]}
    assert out.total == [2.5, 0.0]  # None skipped (TRL's nansum)
    import sys
    module = next(m for n, m in sys.modules.items() if n.startswith("grpo_studio_rewards_my_rewards"))
    call = module.seen[-1]
    assert call["prompts"] == ["2+3=", "1+1="] and call["ids"] == [[7, 8], [9]]
    assert call["answer"] == ["5", "2"] and call["level"] == [1, 2] and "prompt" not in call  # as TRL


def test_functions_without_kwargs_get_only_their_columns(tmp_path):
    path = write(tmp_path, "r.py", TRL_STYLE)
    [named] = load(f"{path}:named_columns")
    out = score([named], ["a", "b"], columns=[{"difficulty": 1, "other": "x"}, {"difficulty": 3, "other": "y"}])
    assert out.total == [1.0, 3.0]


def test_relative_file_from_base_dir(tmp_path, monkeypatch):
    write(tmp_path, "r.py", TRL_STYLE)
    monkeypatch.chdir(tmp_path.parent)
    [f] = load_reward_functions([RewardSpec("r.py:only_long")], base_dir=tmp_path)
    assert f.name == "only_long"


def test_conversational_completions_like_trl(tmp_path):
    pytest.importorskip("trl")
    path = write(tmp_path, "trl_rewards.py", "from trl.rewards import think_format_reward\n")
    [think] = load(f"{path}:think_format_reward")
    prompts = [[{"role": "user", "content": "q"}]] * 2
    out = score([think], ["<think>hm</think>5", "5"], prompts=prompts)
    assert out.total == [1.0, 0.0]
    assert as_conversation(prompts, ["x", "y"])[0] == [{"role": "assistant", "content": "x"}]
    assert as_conversation(["q"], ["x"]) == ["x"]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="reward file not found"):
        load(f"{tmp_path / 'nope.py'}:f")


def test_missing_function_lists_the_ones_there(tmp_path):
    path = write(tmp_path, "r.py", TRL_STYLE)
    with pytest.raises(ConfigError, match="has no function 'contain_answer' \\(did you mean 'contains_answer'") as info:
        load(f"{path}:contain_answer")
    assert "only_long" in info.value.hint


def test_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "broken.py", "def f(prompts, completions, **kw):\n    return [1.0 for c in completions\n")
    with pytest.raises(ConfigError, match=r"syntax error in .*broken.py, line 2"):
        load(f"{path}:f")


def test_import_error_names_the_line(tmp_path):
    path = write(tmp_path, "needs.py", "import os\nimport not_a_real_package_xyz\n")
    with pytest.raises(ConfigError, match=r"needs.py, line 2 failed: ModuleNotFoundError"):
        load(f"{path}:f")


def test_wrong_signature_is_caught_at_load(tmp_path):
    path = write(tmp_path, "r.py", "def f(text):\n    return [0.0]\nvalue = 3\n")
    with pytest.raises(ConfigError, match="does not take TRL's arguments"):
        load(f"{path}:f")
    with pytest.raises(ConfigError, match="is a int, not a function"):
        load(f"{path}:value")


# ---------------------------------------------------------------------------------------------------------
# Calling and checking


def test_function_that_raises_names_function_and_sample():
    def picky(prompts, completions, **kwargs):
        return [1.0 / (len(c) - 4) for c in completions]

    with pytest.raises(RewardError) as info:
        score([fn("picky", picky)], ["abcdef", "abc", "abcd", "xy"])
    message = str(info.value)
    assert "reward function 'picky' raised ZeroDivisionError" in message
    assert "sample 2 (completion: 'abcd')" in message and "test_rewards.py, line" in message
    assert "Traceback" not in message and "try-rewards" in info.value.hint


def test_function_that_fails_only_on_a_batch():
    def batch_only(prompts, completions, **kwargs):
        if len(completions) > 1:
            raise RuntimeError("batch too big")
        return [0.0]

    with pytest.raises(RewardError, match="raised RuntimeError: batch too big — on a batch of 3 samples"):
        score([fn("batch_only", batch_only)], ["a", "b", "c"])


def test_wrong_length():
    with pytest.raises(RewardError, match="'short' returned 1 values for 3 completions"):
        score([fn("short", lambda prompts, completions, **kw: [1.0])], ["a", "b", "c"])


def test_not_a_list():
    with pytest.raises(RewardError, match="'scalar' returned float, not a list of 2 numbers"):
        score([fn("scalar", lambda prompts, completions, **kw: 1.0)], ["a", "b"])


def test_nan_names_the_sample():
    with pytest.raises(RewardError, match="'nan' returned nan for sample 1 \\(completion: 'bad'\\)"):
        score([fn("nan", lambda prompts, completions, **kw: [0.0, math.nan])], ["good", "bad"])


def test_non_number_names_the_sample():
    with pytest.raises(RewardError, match="'texty' returned '1.0' \\(str\\) for sample 0"):
        score([fn("texty", lambda prompts, completions, **kw: ["1.0"])], ["x"])


def test_numbers_of_any_kind_and_weighted_sum():
    import numpy as np

    functions = [fn("a", lambda prompts, completions, **kw: np.array([1, 0]), 0.5),
                 fn("b", lambda prompts, completions, **kw: [True, np.float32(2.0)], 2.0),
                 fn("c", lambda prompts, completions, **kw: [None, None], 9.0)]
    out = score(functions, ["x", "y"])
    assert out.per_function == {"a": [1.0, 0.0], "b": [1.0, 2.0], "c": [None, None]}
    assert out.total == [2.5, 4.0]


def test_mismatched_batch_is_a_programming_error():
    with pytest.raises(ValueError, match="must be the same number"):
        score_completions([], ["p"], ["a", "b"], [[1], [2]], [{}, {}])


# ---------------------------------------------------------------------------------------------------------
# try-rewards


def test_try_rewards_scores_reference_and_wrong_answers(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+{i}?", "solution": f"so {i}+{i} is\n#### {2 * i}"}) + "\n"
                            for i in range(1, 9)))
    rewards = write(tmp_path, "r.py", TRL_STYLE)
    config = write(tmp_path, "run.yaml", f"""
        model: {tmp_path / 'no-model'}
        dataset: {{path: {data}, question_column: question, answer_column: solution}}
        rewards: [math_correct, {{name: format_strict, weight: 0.5}}, {{name: "{rewards}:only_long"}}]
        """)
    assert cli(["try-rewards", str(config), "--rows", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in result["functions"]] == ["math_correct", "format_strict", "only_long"]
    assert result["functions"][1]["weight"] == 0.5 and result["functions"][0]["description"]
    assert len(result["rows"]) == 6 and not result["errors"] and "error" not in result
    good, bad = result["rows"][0], result["rows"][1]
    assert good["kind"] == "reference" and bad["kind"] == "wrong"
    assert good["completion"] == "<think>so 1+1 is</think><answer>2</answer>"
    assert good["prompt"] == [{"role": "user", "content": "1+1?"}]  # no model found: chat prompts assumed
    assert good["rewards"] == {"math_correct": 1.0, "format_strict": 1.0, "only_long": 0.5}
    assert good["total"] == 2.0
    assert bad["rewards"]["math_correct"] == 0.0 and bad["rewards"]["format_strict"] == 0.0
    assert result["notes"]  # lengths were estimated


def test_try_rewards_reports_a_broken_function_and_keeps_the_others(tmp_path, capsys):
    rewards = write(tmp_path, "r.py", "def broken(prompts, completions, **kw):\n    return [1.0]\n")
    config = write(tmp_path, "run.yaml", f"""
        model: demo
        dataset: {{path: demo}}
        rewards: [math_correct, "{rewards}:broken"]
        """)
    assert cli(["try-rewards", str(config), "--json"]) == 4
    result = json.loads(capsys.readouterr().out)
    assert result["error"]["kind"] == "reward" and "'broken' returned 1 values" in result["error"]["message"]
    assert [e["function"] for e in result["errors"]] == ["broken"]
    assert [r["rewards"]["math_correct"] for r in result["rows"][:2]] == [1.0, 0.0]
    assert isinstance(result["rows"][0]["prompt"], str) and not result["notes"]  # demo: no chat template
    assert cli(["try-rewards", str(config)]) == 4
    assert "error: reward function 'broken'" in capsys.readouterr().out



def test_try_rewards_total_is_none_where_no_function_scores(tmp_path, capsys):
    """The same total as training (rewards.weighted_sum): a row no function scores has no total, not 0."""
    rewards = write(tmp_path, "r.py", "def never(prompts, completions, **kw):\n    return [None] * len(prompts)\n")
    config = write(tmp_path, "run.yaml", f"""
        model: demo
        dataset: {{path: demo}}
        rewards: ["{rewards}:never"]
        """)
    assert cli(["try-rewards", str(config), "--rows", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["total"] for row in result["rows"]] == [None, None]

def test_try_rewards_config_error_as_json(tmp_path, capsys):
    config = write(tmp_path, "run.yaml", "rewards: [math_corect]\n")
    assert cli(["try-rewards", str(config), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["kind"] == "config" and "did you mean 'math_correct'" in error["message"]


def test_gui_commands_stay_torch_free(tmp_path):
    """preview and try-rewards back GUI buttons: they must not pay for importing torch/transformers."""
    import subprocess
    import sys

    config = write(tmp_path, "run.yaml", "model: demo\ndataset: {path: demo}\nrewards: [math_correct, length]\n")
    code = ("import sys\nfrom grpo_studio.engine.cli import main\n"
            f"assert main(['try-rewards', {str(config)!r}, '--json']) == 0\n"
            "assert main(['preview', '--dataset', 'demo', '--json']) == 0\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_rewards_that_overflow_are_an_error_not_a_silent_zero_loss():
    """Issue 27 finding 11: 1e308 made the reward mean and std overflow; the run 'finished' learning nothing."""
    with pytest.raises(RewardError, match="'huge' returned 1e\\+308 for sample 1.*overflow") as error:
        score([fn("huge", lambda prompts, completions, **kw: [1.0, 1e308])], ["a", "b"])
    assert "scale the reward" in error.value.hint
    assert score([fn("big", lambda prompts, completions, **kw: [1e12, -1e12])], ["a", "b"])  # large is fine
