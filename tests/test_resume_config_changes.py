"""Resuming after config.yaml was edited (issue 16, case 5): changes a checkpoint cannot honour (learning rate,
model, LoRA rank, ...) are refused with every changed field listed; max_steps, checkpoint_every and the
logging settings are applied and named."""
import pytest
import yaml

from grpo_studio.engine.cli import main
from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.errors import ConfigError
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.checkpoints.resume_check import check_resume, config_changes
from grpo_studio.engine.common.runs import RunPaths

EXIT_CONFIG = 2


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", "--demo", "--steps", "2", "--run-dir", str(run), "--quiet"]) == 0
    return run


def edit(run, change):
    path = RunPaths(run).config
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return data


def resume(run, *extra):
    return main(["train", "--resume", str(run), "--quiet", *extra])


@pytest.mark.parametrize("field,change,shown", [
    ("optim.learning_rate", lambda d: d["optim"].update(learning_rate=0.01), "0.002 -> 0.01"),
    ("lora.r", lambda d: d["lora"].update(r=8), "16 -> 8"),
    ("model", lambda d: d.update(model="/somewhere/else"), "'demo' -> '/somewhere/else'"),
])
def test_changes_a_checkpoint_cannot_honour_are_refused(finished_run, tmp_path, capsys, field, change, shown):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    edited = edit(run, change)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    capsys.readouterr()
    assert resume(run) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{field}: {shown}" in err and "cannot honour" in err
    assert yaml.safe_load(RunPaths(run).config.read_text()) == edited  # the user's file is left as written
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_changes_that_can_be_honoured_are_applied_and_named(finished_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    edit(run, lambda d: d.update(max_steps=3, log_samples_every=1, checkpoint_every=1))
    assert resume(run) == 0
    events = list(read_events(RunPaths(run).events))
    messages = [e["message"] for e in events if e["type"] == "log"]
    assert "applied on resume: max_steps 2 -> 3" in messages
    assert "applied on resume: checkpoint_every 100 -> 1" in messages
    assert [e["step"] for e in events if e["type"] == "progress"][-1] == 3
    assert any(e["type"] == "sample" and e["step"] == 3 for e in events)  # log_samples_every took effect


def test_config_changes_lists_nested_fields():
    old, new = TrainConfig().to_dict(), TrainConfig().to_dict()
    new["grpo"]["beta"] = 0.1
    new["rewards"] = [{"name": "format_strict", "weight": 1.0}]
    assert set(config_changes(old, new)) == {"grpo.beta", "rewards"}


def test_resume_without_a_checkpoint_or_with_an_old_one(tmp_path):
    assert check_resume(tmp_path / "checkpoints", TrainConfig()) == []  # nothing to compare with
    old = tmp_path / "checkpoints" / "step-1"
    old.mkdir(parents=True)
    (old / "complete.json").write_text("{}")
    (old / "trainer_state.pt").write_bytes(b"")
    notes = check_resume(tmp_path / "checkpoints", TrainConfig())
    assert notes and "could not be compared" in notes[0]


def test_refusal_names_every_changed_field(tmp_path):
    folder = tmp_path / "checkpoints" / "step-2"
    folder.mkdir(parents=True)
    for name, text in (("complete.json", "{}"), ("trainer_state.pt", "")):
        (folder / name).write_text(text)
    import json

    (folder / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    changed = TrainConfig()
    changed.optim.learning_rate, changed.grpo.num_generations, changed.max_steps = 1e-4, 4, 10
    with pytest.raises(ConfigError) as info:
        check_resume(tmp_path / "checkpoints", changed)
    assert "optim.learning_rate" in info.value.message and "grpo.num_generations" in info.value.message
    assert "max_steps" not in info.value.message.split("honour:")[1]  # allowed: not among the refused
