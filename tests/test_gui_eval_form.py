"""The New-run page's held-out evaluation card: off by default, turned on by a held-out file or a split, written
into the run's config as the `eval:` section, and loaded back from a config that has one."""
import pytest
import yaml

pytest.importorskip("pytestqt")

from test_gui_new_run import page  # noqa: E402,F401 - the fixture


def test_naming_a_held_out_file_turns_evaluation_on_in_the_config(page, qtbot, tmp_path):
    card = page.evaluation
    assert page.collect()["eval"]["path"] is None and not card.editors["eval.every"].isEnabled()
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text('{"prompt": "2+2=", "answer": "4"}\n')
    card.editors["eval.path"].widget.setText(str(held_out))
    card.editors["eval.num_prompts"].widget.setValue(16)
    card.editors["eval.every"].widget.setValue(5)
    qtbot.waitUntil(lambda: page.config is not None and page.config.eval.every == 5, timeout=3000)  # validated
    assert page.is_ready() and card.editors["eval.every"].isEnabled() and card.state.text().startswith("On")
    config = page.config
    assert config is not None and config.eval.enabled
    assert (config.eval.path, config.eval.num_prompts, config.eval.every, config.eval.greedy) == \
        (str(held_out), 16, 5, True)
    page.load_data(yaml.safe_load(yaml.safe_dump(page.collect())))  # a saved YAML opened again
    assert card.editors["eval.path"].value() == str(held_out) and card.editors["eval.every"].value() == 5


def test_an_eval_error_shows_under_its_field(page, qtbot):
    card = page.evaluation
    card.editors["eval.split"].widget.setText("test")
    card.editors["eval.every"].widget.setValue(3)
    qtbot.waitUntil(lambda: page.config is not None and page.config.eval.every == 3, timeout=3000)
    card.editors["eval.split"].widget.setText("")  # off again, with an evaluation interval left set
    error = card.editors["eval.every"].error
    qtbot.waitUntil(lambda: not page.is_ready() and error.text() != "", timeout=3000)
    assert "held-out evaluation is off" in error.text()
