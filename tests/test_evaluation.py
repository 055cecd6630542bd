"""Held-out evaluation: eval events at step 0, every N steps and at the end, scored with the run's rewards;
evaluation leaves training's random state alone, so a resumed run with eval on equals an uninterrupted one."""
import json
import random

import numpy as np
import pytest
import torch

from grpo_studio.engine.common.config import config_from_dict
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.evaluate.held_out import isolated_rng
from grpo_studio.engine.common.runs import summarize_run
from grpo_studio.engine.run.summary import run_summary
from grpo_studio.engine.run.runner import run_engine
from test_checkpoint_resume import adapter_weights, small_config
from test_loop import StopAfter


def held_out_file(tmp_path, pairs):
    path = tmp_path / "held_out.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b)}) + "\n" for a, b in pairs))
    return path


def eval_config(tmp_path, steps=4, every=2, num_prompts=16):
    config = small_config(steps=steps)
    config.eval.path = str(held_out_file(tmp_path, [(a, b) for a in range(5, 10) for b in range(5, 10)]))
    config.eval.every, config.eval.num_prompts = every, num_prompts
    return config


def evals_of(run_dir):
    return [e for e in read_events(RunPaths(run_dir).events) if e["type"] == "eval"]


def test_eval_runs_before_training_every_n_steps_and_at_the_end(tmp_path):
    run = tmp_path / "run"
    assert run_engine(eval_config(tmp_path, steps=5, every=2), run, quiet=True) == 0
    evals = evals_of(run)
    assert [e["step"] for e in evals] == [0, 2, 4, 5]
    for e in evals:
        assert e["num_prompts"] == 16 and e["accuracy_reward"] == "math_correct" and e["greedy"] is True
        assert set(e["rewards"]) == {"math_correct", "answer_format"}
        assert 0.0 <= e["accuracy"] <= 1.0 and e["completion_length"] > 0
        assert len(e["examples"]) == 3 and e["examples"][0]["prompt"].endswith("=")
    # the held-out sample is fixed: every evaluation answers the same prompts
    assert len({tuple(x["prompt"] for x in e["examples"]) for e in evals}) == 1
    kinds = [(e["type"], e.get("phase")) for e in read_events(RunPaths(run).events)]
    assert ("phase", "evaluating") in kinds
    # the end-of-run summary and the run store say before -> after
    first, last = evals[0], evals[-1]
    assert (f"held-out accuracy (16 prompts, math_correct = 1): {first['accuracy']:.2f} at step 0 -> "
            f"{last['accuracy']:.2f} at step 5; mean reward {first['reward']:.3f} -> {last['reward']:.3f}"
            in run_summary(run))
    listed = summarize_run(run)
    assert (listed.eval_before, listed.eval_after) == (first["accuracy"], last["accuracy"])


def test_accuracy_is_the_share_of_full_correctness_scores(tmp_path):
    """With as many prompts as examples shown, the event's figures can be recomputed from its examples."""
    run = tmp_path / "run"
    config = eval_config(tmp_path, steps=1, every=0, num_prompts=3)
    config.eval.greedy = False  # sampled answers vary, so right and wrong ones both show up over the events
    assert run_engine(config, run, quiet=True) == 0
    for e in evals_of(run):
        examples = e["examples"]
        assert len(examples) == 3
        assert e["accuracy"] == pytest.approx(sum(x["correct"] for x in examples) / 3)
        assert e["reward"] == pytest.approx(sum(x["reward"] for x in examples) / 3)
        assert e["rewards"]["math_correct"] == pytest.approx(e["accuracy"])


def test_resumed_run_with_eval_equals_an_uninterrupted_one_and_one_without_eval(tmp_path):
    straight, interrupted, plain = tmp_path / "straight", tmp_path / "interrupted", tmp_path / "plain"
    config = eval_config(tmp_path, steps=6, every=2, num_prompts=8)
    config.eval.greedy = False  # sampled evaluation draws random numbers: they must not be training's
    assert run_engine(config, straight, quiet=True) == 0
    assert run_engine(config, interrupted, control=StopAfter(interrupted, 3), quiet=True) == 0
    assert run_engine(config, interrupted, resume=True, quiet=True) == 0
    without = small_config(steps=6)
    assert run_engine(without, plain, quiet=True) == 0

    a, b, c = adapter_weights(straight), adapter_weights(interrupted), adapter_weights(plain)
    assert a.keys() == b.keys() == c.keys() and a
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    assert [e["step"] for e in evals_of(interrupted)] == [0, 2, 4, 6]
    # the same model on the same prompts with the same eval seed: the resumed run's evaluations repeat
    assert [e["examples"] for e in evals_of(interrupted)] == [e["examples"] for e in evals_of(straight)]


def test_isolated_rng_restores_every_generator():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with isolated_rng(7):
        drawn = torch.rand(1).item()
        random.random(), np.random.rand()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    with isolated_rng(7):
        assert torch.rand(1).item() == drawn  # its own seeded stream


def test_eval_settings_are_validated_with_clear_errors():
    config = config_from_dict({"eval": {"split": "test", "every": 5}})
    assert config.eval.enabled and config.eval.num_prompts == 64 and config.eval.greedy
    assert not config_from_dict({}).eval.enabled
    with pytest.raises(ConfigError, match="eval.every: held-out evaluation is off; set eval.path"):
        config_from_dict({"eval": {"every": 5}})
    with pytest.raises(ConfigError, match=r"eval.num_prompt: unknown field \(did you mean 'eval.num_prompts'"):
        config_from_dict({"eval": {"split": "test", "num_prompt": 5}})
    with pytest.raises(ConfigError, match="eval.num_prompts: 0 is out of range"):
        config_from_dict({"eval": {"split": "test", "num_prompts": 0}})


def test_missing_held_out_data_fails_before_training_and_says_so(tmp_path):
    config = small_config(steps=2)
    config.eval.path = str(tmp_path / "nowhere.jsonl")
    run = tmp_path / "run"
    assert run_engine(config, run, quiet=True) != 0
    error = next(e for e in read_events(RunPaths(run).events) if e["type"] == "error")
    assert error["kind"] == "data" and error["message"].startswith("held-out data (eval): dataset not found")
    assert "eval.path" in error["hint"]
    assert not [e for e in read_events(RunPaths(run).events) if e["type"] == "metrics"]


def cli_lines(capsys, *argv):
    from grpo_studio.engine.cli import main

    code = main([*map(str, argv), "--json"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_eval_command_repeats_the_runs_own_evaluations(tmp_path, capsys):
    """`grpo-studio eval RUN --with-base` scores the base model as the run's step-0 eval did and the final
    adapter as its last eval did; --checkpoint picks a checkpoint; --data names other held-out data."""
    run = tmp_path / "run"
    config = eval_config(tmp_path, steps=4, every=0, num_prompts=6)
    config.checkpoint_every = 2
    assert run_engine(config, run, quiet=True) == 0
    own = evals_of(run)
    assert [e["step"] for e in own] == [0, 4]

    code, lines = cli_lines(capsys, "eval", run, "--with-base")
    assert code == 0
    base, tuned = [m for m in lines if m["type"] == "eval"]
    assert (base["side"], base["adapter"], tuned["side"], tuned["step"]) == ("base", None, "tuned", 4)
    for mine, theirs in ((base, own[0]), (tuned, own[1])):
        assert [mine[k] for k in ("accuracy", "reward", "examples")] == [theirs[k] for k in ("accuracy", "reward",
                                                                                            "examples")]
    code, lines = cli_lines(capsys, "eval", run, "--checkpoint", "step-2", "--data",
                            held_out_file(tmp_path, [(1, 1), (2, 2)]))
    (only,) = [m for m in lines if m["type"] == "eval"]
    assert only["step"] == 2 and only["num_prompts"] == 2 and "checkpoints/step-2" in only["adapter"]
    assert {x["prompt"] for x in only["examples"]} == {"1+1=", "2+2="}


def test_eval_command_errors_say_what_to_do(tmp_path, capsys):
    run = tmp_path / "run"
    assert run_engine(small_config(steps=1), run, quiet=True) == 0  # no eval: section
    code, lines = cli_lines(capsys, "eval", run)
    assert code != 0 and lines[-1]["type"] == "error" and "--data FILE" in lines[-1]["hint"]
    code, lines = cli_lines(capsys, "eval", run, "--checkpoint", "step-9", "--data", held_out_file(tmp_path, [(1, 2)]))
    assert code != 0 and "no checkpoint step-9" in lines[-1]["message"] and "step-1" in lines[-1]["hint"]


def test_eval_command_on_an_adapter_whose_step_is_unknown(tmp_path, capsys):
    """No checkpoint name and no status.json to say the step: evaluated all the same, the step left None."""
    run = tmp_path / "run"
    assert run_engine(small_config(steps=1), run, quiet=True) == 0
    RunPaths(run).status.unlink()
    code, lines = cli_lines(capsys, "eval", run, "--data", held_out_file(tmp_path, [(1, 2)]))
    (only,) = [m for m in lines if m["type"] == "eval"]
    assert code == 0 and only["step"] is None and only["num_prompts"] == 1


def test_train_eval_flag_sets_the_held_out_data(tmp_path):
    from grpo_studio.engine.cli import build_parser
    from grpo_studio.engine.commands.train import resolve_job

    held_out = held_out_file(tmp_path, [(1, 2)])
    args = build_parser().parse_args(["train", "--demo", "--eval", str(held_out), "--run-dir", str(tmp_path / "r")])
    job = resolve_job(args)
    assert job.config.eval.enabled and job.config.eval.path == str(held_out) and job.config.eval.num_prompts == 64


def test_out_of_memory_while_evaluating_names_the_eval_settings():
    from grpo_studio.engine.train.oom import classify_oom

    found = classify_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), "evaluating")
    assert "eval.num_prompts" in found.hint and "generation_batch_size" in found.hint


def test_terminal_progress_prints_each_evaluation():
    import io

    from grpo_studio.engine.run.progress import ProgressPrinter

    out = io.StringIO()
    printer = ProgressPrinter(file=out)
    printer.handle({"type": "eval", "step": 0, "accuracy": 0.234, "reward": 0.31, "num_prompts": 64})
    printer.handle({"type": "eval", "step": 20, "accuracy": 0.92, "reward": 0.95, "num_prompts": 64})
    assert out.getvalue().splitlines() == [
        "held-out (step 0, base model): accuracy 0.23 on 64 prompts, mean reward 0.310",
        "held-out (step 20): accuracy 0.92 on 64 prompts, mean reward 0.950"]


def test_chat_model_eval_on_a_slice_of_the_training_file(tiny_llama_dir, tmp_path):
    """Questions rendered through the chat template like the training ones; the event shows the question; a
    held-out slice disjoint from training raises no warning, the same rows as training do; greedy repeats."""
    from grpo_studio.engine.model import policy as pm
    from grpo_studio.engine.common.config import TrainConfig
    from grpo_studio.engine.data.dataset import load_examples
    from grpo_studio.engine.evaluate.held_out import Evaluator, load_eval_examples
    from grpo_studio.engine.rewards.scoring import load_reward_functions

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n"
                            for i in range(12)))
    config = TrainConfig(model=str(tiny_llama_dir), device="cpu", dtype="float32", system_prompt="Be brief.")
    config.lora.r = 4
    config.dataset.path, config.dataset.question_column, config.dataset.split = str(data), "question", "train[:8]"
    config.grpo.max_completion_length = 6
    config.eval.split, config.eval.num_prompts = "train[8:]", 10
    tokenizer = pm.load_tokenizer(tiny_llama_dir)
    training, _ = load_examples(config, tokenizer)
    held_out, notes = load_eval_examples(config, tokenizer, training)
    assert len(held_out) == 4 and notes[1:] == ["eval.num_prompts is 10 but the held-out data has 4 prompts"]
    assert all("<|im_start|>system\nBe brief." in e.prompt_text for e in held_out)
    config.eval.split = "train[:8]"
    assert "8 of the 8 held-out prompts are also training prompts" in load_eval_examples(config, tokenizer,
                                                                                          training)[1][-1]
    config.eval.split = "train[8:]"
    path, base = pm.resolve_model_path(config.model)
    policy = pm.load_policy(config, path, base, tokenizer)
    events = []
    evaluator = Evaluator(config, tokenizer, held_out, load_reward_functions(config.rewards),
                          lambda kind, **fields: events.append({"type": kind, **fields}))
    first, again = evaluator.evaluate(policy.model, 0), evaluator.evaluate(policy.model, 0)
    assert first["examples"] == again["examples"] and first["accuracy"] == again["accuracy"]
    assert {x["prompt"] for x in first["examples"]} <= {f"What is {i} + 1?" for i in range(8, 12)}
    assert [e["type"] for e in events] == ["phase", "eval", "phase", "eval"]
