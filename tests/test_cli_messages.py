"""Issue 27 finding 13: what a careless user types ends in a message, never a traceback."""
import subprocess
import sys

import pytest

from grpo_studio.engine.cli import main

CLI = [sys.executable, "-m", "grpo_studio"]


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-8", "0"])
def test_estimate_refuses_a_gpu_memory_that_is_not_a_size(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["estimate", "--gpu-memory", value])
    assert exit_.value.code == 2
    assert "is not a GPU memory size" in capsys.readouterr().err


@pytest.mark.parametrize("where, said", [("long", "at most 255 bytes"), ("/proc/grpo-studio-test-run", "/proc"),
                                         ("/sys/kernel/grpo-studio-test-run", "cannot use /sys/kernel")])
def test_a_run_folder_that_cannot_exist_is_a_message(where, said, tmp_path, capsys, runs_dir):
    run_dir = str(tmp_path / ("a" * 300)) if where == "long" else where
    assert main(["train", "--demo", "--steps", "1", "--run-dir", run_dir, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use ") and said in err and "hint: " in err


def test_runs_into_a_closed_pipe_ends_quietly(runs_dir):
    for n in range(3):
        (runs_dir / f"run-{n}").mkdir(parents=True)
        (runs_dir / f"run-{n}" / "config.yaml").write_text("model: demo\n")
    process = subprocess.Popen([*CLI, "runs"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # `| head -0`: the reader is gone before the first line
    _, err = process.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()


# ------------------------------------------------------------------------- issue 27, finding 14: messages
def crashed_run(runs_dir, name):
    from test_runs_store import dead_pid, make_run

    return make_run(runs_dir, name, state="running", pid=dead_pid())


def test_hints_quote_a_run_name_with_a_space(runs_dir, capsys):
    run = crashed_run(runs_dir, "sp ace")
    assert main(["attach", "sp ace"]) == 1
    assert f"--run-dir '{run.resolve()}'" in capsys.readouterr().out
    assert main(["runs"]) == 0
    assert f"--run-dir '{run}'" in capsys.readouterr().out
    assert main(["pause", "sp ace"]) != 0
    assert f"--run-dir '{run.resolve()}'" in capsys.readouterr().err


def test_a_detached_run_outside_the_runs_folder_is_named_by_its_path(runs_dir, tmp_path, monkeypatch, capsys):
    from grpo_studio.engine.common import launcher

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launcher, "start_detached", lambda argv, run_dir: 4242)
    assert main(["train", "--demo", "--run-dir", "relrun", "--detach"]) == 0
    out = capsys.readouterr().out
    assert f"grpo-studio attach {tmp_path / 'relrun'}" in out and "grpo-studio attach relrun" not in out
    assert "outside the runs folder" in out


@pytest.mark.parametrize("command", ["stop", "attach", "pause"])
def test_a_folder_that_is_not_a_run_is_said_so(command, tmp_path, runs_dir, capsys):
    (tmp_path / "plain").mkdir()
    assert main([command, str(tmp_path / "plain")]) != 0
    err = capsys.readouterr().err
    assert "is not a run folder" in err and "created" not in err


def test_resume_with_steps_not_beyond_the_checkpoint_is_refused(tmp_path, capsys):
    from grpo_studio.engine.checkpoints.files import COMPLETE_FILE, STATE_FILE
    from grpo_studio.engine.common.config import save_config
    from grpo_studio.engine.common.demo import demo_config

    run = tmp_path / "run"
    checkpoint = run / "checkpoints" / "step-24"
    checkpoint.mkdir(parents=True)
    (checkpoint / COMPLETE_FILE).write_text("")
    (checkpoint / STATE_FILE).write_bytes(b"")
    save_config(demo_config(), run / "config.yaml")
    assert main(["train", "--resume", str(run), "--steps", "10", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--steps 10 is not beyond step 24" in err


def test_zero_epochs_is_a_config_error():
    from grpo_studio.engine.common.config import config_from_dict
    from grpo_studio.engine.common.demo import demo_config
    from grpo_studio.engine.common.errors import ConfigError

    data = demo_config().to_dict()
    data.update(max_steps=None, num_train_epochs=0)
    with pytest.raises(ConfigError, match="num_train_epochs"):
        config_from_dict(data)


def test_the_summary_counts_steps_whose_rewards_were_all_none(tmp_path):
    from grpo_studio.engine.common.events import EventLog
    from grpo_studio.engine.run.summary import run_summary

    log = EventLog(tmp_path / "events.jsonl")
    for step in (1, 2, 3):
        log.emit("metrics", step=step, reward=None)
    log.close()
    text = run_summary(tmp_path)
    assert text.startswith("summary: 3 steps") and "every reward function returned None" in text


@pytest.mark.parametrize("module", ["grpo_studio", "grpo_studio.cli"])
def test_both_module_entry_points_run_the_cli(module):
    done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip(), (done.stdout, done.stderr)
