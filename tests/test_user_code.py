"""Reward functions are user code running inside the engine (issue 16, cases 8-10): an exit, a hang, a
function that fails only on whole batches and one that floods the terminal all end (or go on) cleanly."""
import threading

import pytest

from grpo_studio.engine.common.errors import RewardError
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.rewards.scoring import RewardFunction, score_completions
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from grpo_studio.engine.rewards.user_code import OUTPUT_CAP_BYTES, call_guarded, find_failing_slice
from test_run_folder_safety import tiny

EXIT_REWARD = 4


def score(fn, n=8, timeout_s=None):
    rf = RewardFunction(name=getattr(fn, "__name__", "f"), weight=1.0, fn=fn, timeout_s=timeout_s)
    return score_completions([rf], ["p"] * n, [f"c{i}" for i in range(n)], [[i] for i in range(n)],
                             [{"answer": str(i)} for i in range(n)])


def run_with_reward(tmp_path, body, **settings):
    rewards = tmp_path / "guarded_rewards.py"
    rewards.write_text("import sys, time\n\ndef odd(prompts, completions, **kwargs):\n" + body)
    config = tiny(steps=2, every=0)
    config.rewards[1].name = f"{rewards}:odd"
    for key, value in settings.items():
        setattr(config, key, value)
    run = tmp_path / "run"
    return run_engine(config, run, quiet=True), run


# ------------------------------------------------------------------------------- case 8: sys.exit & co
@pytest.mark.parametrize("body,said", [("    sys.exit(3)\n", "called sys.exit(3)"),
                                       ("    raise KeyboardInterrupt\n", "raised KeyboardInterrupt")])
def test_an_exit_in_a_reward_is_a_reward_error_not_the_engines_exit(tmp_path, capsys, body, said):
    code, run = run_with_reward(tmp_path, body)
    assert code == EXIT_REWARD  # never the user's 3, which means "data error" to scripts and the GUI
    events = list(read_events(RunPaths(run).events))
    error = [e for e in events if e["type"] == "error"][-1]
    assert error["kind"] == "reward" and "'odd'" in error["message"] and said in error["message"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "failed"
    assert read_status(RunPaths(run))["state"] == "failed"
    assert said in capsys.readouterr().err  # what a detached run's engine.log shows


def test_call_guarded_reports_system_exit_without_a_thread():
    with pytest.raises(RewardError, match=r"'f' called sys.exit\(None\)"):
        call_guarded(lambda: exit(), "f", None)


# ---------------------------------------------------------------------------------- case 9: a timeout
def test_a_reward_that_never_returns_times_out_naming_the_function():
    release = threading.Event()

    def stuck(prompts, completions, **kwargs):
        release.wait(60)
        return [0.0] * len(completions)

    try:
        with pytest.raises(RewardError, match=r"'stuck' did not return within 0.2 s \(reward_timeout_s\)") as info:
            score(stuck, timeout_s=0.2)
        assert "reward_timeout_s" in info.value.hint
    finally:
        release.set()


def test_reward_timeout_s_reaches_the_training_loop(tmp_path):
    code, run = run_with_reward(tmp_path, "    time.sleep(30)\n", reward_timeout_s=0.5)
    assert code == EXIT_REWARD
    error = [e for e in read_events(RunPaths(run).events) if e["type"] == "error"][-1]
    assert "'odd' did not return within 0.5 s" in error["message"]


# ------------------------------------------------------------------- case 10: batches and flood output
def test_a_function_failing_only_on_whole_batches_is_not_called_per_sample():
    calls = []

    def batch_only(prompts, completions, **kwargs):
        calls.append(len(completions))
        if len(completions) == 128:
            raise ValueError("expects a smaller batch")
        return [0.0] * len(completions)

    with pytest.raises(RewardError, match="on a batch of 128 samples"):
        score(batch_only, n=128)
    assert len(calls) == 3  # the batch, then its two halves: not 129 calls


def test_the_failing_sample_is_named_once_in_few_calls():
    calls = []

    def picky(prompts, completions, answer, **kwargs):
        calls.append(len(completions))
        if "37" in answer:
            raise ValueError("cannot score 37")
        return [0.0] * len(completions)

    with pytest.raises(RewardError, match=r"ValueError: cannot score 37 — on sample 37 "):
        score(picky, n=128)
    assert len(calls) <= 2 * 7 + 2  # bisection over 128 samples


def test_find_failing_slice_bisects():
    assert find_failing_slice(lambda a, b: ValueError() if a <= 5 < b else None, 16)[0] == 5
    assert find_failing_slice(lambda a, b: None, 16) == (None, None)


def test_what_a_reward_prints_is_capped_per_call(capsys):
    def chatty(prompts, completions, **kwargs):
        for i in range(40_000):
            print(f"line {i} of debugging output")
        return [1.0] * len(completions)

    assert score(chatty, timeout_s=30).total == [1.0] * 8
    out, err = capsys.readouterr()
    assert len(out) <= OUTPUT_CAP_BYTES and out.startswith("line 0 of")
    assert "printed" in err and "more characters; not shown" in err and len(err) < 200
