"""Reward models from the Rewards panel: added, edited, stored as the config's `{model, weight, load_in_4bit}`
reward, loaded back from a config, and checked before Start."""
import pytest

pytest.importorskip("pytestqt")

from grpo_studio.engine.common.config import config_from_dict  # noqa: E402
from grpo_studio.gui.rewards_panel import ModelRow, RewardsPanel  # noqa: E402


@pytest.fixture
def panel(qtbot):
    widget = RewardsPanel()
    qtbot.addWidget(widget)
    return widget


def stored(panel):
    data = {}
    panel.store(data)
    return data["rewards"]


def test_a_reward_model_is_added_and_stored_as_the_config_wants(panel, qtbot, tmp_path):
    folder = tmp_path / "rm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    panel.load([{"name": "math_correct", "weight": 1.0}])
    add = next(b for b in panel.findChildren(type(panel.try_button)) if b.text() == "Add reward model")
    with qtbot.waitSignal(panel.changed_event, timeout=1000):
        add.click()
    row = panel.customs[-1]
    assert isinstance(row, ModelRow)
    row.model.setText(str(folder))
    row.weight.setValue(0.5)
    row.four_bit.setChecked(True)
    rewards = stored(panel)
    assert rewards == [{"name": "math_correct", "weight": 1.0},
                       {"model": str(folder), "weight": 0.5, "load_in_4bit": True}]
    assert panel.errors({"rewards": rewards}) == {}
    spec = config_from_dict({"rewards": rewards}).rewards[1]
    assert (spec.name, spec.model, spec.weight, spec.load_in_4bit) == (f"model:{folder}", str(folder), 0.5, True)


def test_a_config_with_a_reward_model_loads_into_the_panel(panel):
    rewards = [{"name": "model:org/rm", "model": "org/rm", "weight": 2.0, "load_in_4bit": False},
               {"name": "length", "weight": 0.1}]
    panel.load(rewards)
    assert [type(r) for r in panel.customs] == [ModelRow]
    assert panel.customs[0].model.text() == "org/rm" and panel.customs[0].weight.value() == 2.0
    assert stored(panel) == [{"name": "length", "weight": 0.1},
                             {"model": "org/rm", "weight": 2.0, "load_in_4bit": False}]
    panel.remove_custom(panel.customs[0])
    assert stored(panel) == [{"name": "length", "weight": 0.1}]


def test_reward_model_problems_show_under_the_row(panel, tmp_path):
    panel.load([{"name": "math_correct", "weight": 1.0}])
    empty, missing = panel.add_custom(model=True), panel.add_custom(model=True)
    missing.model.setText(str(tmp_path / "nowhere"))
    errors = panel.errors({"rewards": stored(panel)})
    assert errors["rewards[1].model"].startswith("name a cached hub id")
    assert errors["rewards[2].model"] == f"no model folder (with config.json) at {tmp_path / 'nowhere'}"
    panel.show_errors(errors)
    assert not empty.error.isHidden() and "no model folder" in missing.error.text()


def test_the_new_run_form_takes_a_reward_model(qtbot, tmp_path, monkeypatch, runs_dir):
    from test_gui_new_run import new_run_page

    form = new_run_page(qtbot, tmp_path, monkeypatch, "", None)
    row = form.rewards.add_custom("org/reward-model", 0.5, model=True)
    form.validate()
    assert form.config is not None and form.config.rewards[-1].model == "org/reward-model"
    assert form.start_button.isEnabled()
    row.model.setText("")
    form.validate()
    assert not row.error.isHidden() and not form.start_button.isEnabled()
