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
