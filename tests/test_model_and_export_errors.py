"""Damaged model files, Ctrl-C while the model loads, and export by run name or into a read-only folder
(issue 16, cases 11 and 12)."""
import json
import os
import shutil

import pytest

from grpo_studio.engine.cli import main
from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.demo import demo_model_dir
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.model.files import damaged_file
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from mounts import tmpfs
from test_run_folder_safety import tiny

EXIT_CONFIG, EXIT_EXPORT = 2, 8


def damaged_copy(tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(demo_model_dir(), folder)
    if damage == "truncated":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return folder, weights
    (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    return folder, folder / "config.json"


# ---------------------------------------------------------------------------- case 11: damaged files
@pytest.mark.parametrize("damage", ["truncated", "broken_config"])
def test_a_damaged_model_file_is_named_not_reported_as_a_crash(tmp_path, damage, capsys):
    folder, broken = damaged_copy(tmp_path, damage)
    config = tiny(steps=1)
    config.model = str(folder)
    run = tmp_path / "run"
    assert run_engine(config, run, quiet=True) == EXIT_CONFIG
    error = [e for e in read_events(RunPaths(run).events) if e["type"] == "error"][-1]
    assert error["kind"] == "config" and f"{broken} is damaged" in error["message"]
    assert "report" not in error["hint"] and "again" in error["hint"]
    assert "Traceback" not in capsys.readouterr().err


def test_an_intact_model_folder_has_no_damaged_file():
    assert damaged_file(demo_model_dir()) is None


def test_a_safetensors_file_cut_inside_its_data_is_found(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(demo_model_dir(), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])  # header whole, last tensor short
    found = damaged_file(folder)
    assert found is not None and found[0] == weights


# --------------------------------------------------------------------- case 11: Ctrl-C during loading
def test_stop_while_loading_writes_no_checkpoint_and_no_adapter(tmp_path):
    control = Control()
    control.handle("stop")  # what the SIGINT handler does when Ctrl-C comes while the model loads
    run = tmp_path / "run"
    assert run_engine(tiny(steps=3), run, control=control, quiet=True) == 0
    assert not (run / "adapter").exists()
    assert not list(run.glob("checkpoints/step-*"))
    events = list(read_events(RunPaths(run).events))
    assert events[-1] == {**events[-1], "type": "done", "reason": "stopped", "adapter": None}
    assert not any(e["type"] in ("checkpoint", "progress") for e in events)
    assert read_status(RunPaths(run))["state"] == "stopped"


# --------------------------------------------------------------------------------- case 12: export
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run = runs / "2026-12-03_120000_demo"
    assert run_engine(tiny(steps=1, every=0), run, quiet=True) == 0
    return run


def test_export_resolves_a_run_name_like_attach_and_stop(trained_run, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GRPO_STUDIO_RUNS_DIR", str(trained_run.parent))
    monkeypatch.chdir(tmp_path)  # the name is not a path from here
    out = tmp_path / "by-name.gguf"
    assert main(["export", "2026-12-03_120000", "--gguf", str(out)]) == 0  # a unique prefix, as `attach`
    assert out.stat().st_size > 0
    assert main(["export", "no-such-run", "--gguf", str(out)]) != 0
    assert "no run named 'no-such-run'" in capsys.readouterr().err


def test_export_into_a_read_only_folder_is_an_export_error_not_a_bug(trained_run, tmp_path, capsys):
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root writes anywhere: use a read-only file system
        with tmpfs(tmp_path / "ro", "1m", readonly=True) as folder:
            code = main(["export", str(trained_run), "--gguf", str(folder / "a.gguf"), "--json"])
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        code = main(["export", str(trained_run), "--gguf", str(folder / "a.gguf"), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == EXIT_EXPORT
    assert lines[-1]["type"] == "error" and lines[-1]["kind"] == "export"
    assert "cannot write" in lines[-1]["message"] and "bug" not in lines[-1]["hint"]
