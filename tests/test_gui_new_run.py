"""New run page: the live VRAM bar, errors next to their fields, Start gating, presets, suggestions, Start."""
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from grpo_studio.gui.new_run_page import NewRunPage  # noqa: E402
from grpo_studio.gui.settings import AppSettings  # noqa: E402

FAKE_CLI = Path(__file__).parent / "data" / "fake_cli.py"


def new_run_page(qtbot, tmp_path, monkeypatch, gpu_env: str, gpu: dict | None) -> NewRunPage:
    """The page with the fake CLI and `gpu` (None: a machine without an NVIDIA GPU), its estimate shown."""
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("GRPO_STUDIO_GPU", gpu_env)
    monkeypatch.setenv("GRPO_STUDIO_CLI", f"{sys.executable} {FAKE_CLI}")
    widget = NewRunPage(AppSettings())
    qtbot.addWidget(widget)
    widget._gpu_done(gpu)
    qtbot.waitUntil(lambda: widget.vram.result is not None, timeout=5000)
    return widget


@pytest.fixture
def page(qtbot, tmp_path, monkeypatch, runs_dir):
    return new_run_page(qtbot, tmp_path, monkeypatch, "NVIDIA Test GPU, 8192, 8000",
                        {"name": "NVIDIA Test GPU", "total": 8192 << 20, "free": 8000 << 20})


def test_demo_shows_the_vram_bar_and_can_start(page):
    result = page.vram.result
    assert result["model"]["name"] == "demo"
    assert result["verdict"] == "fits"
    assert page.vram.verdict.text() == "Fits"
    assert page.vram.canvas.ours_total == result["plans"]["grpo_studio"]["total"] > 0
    assert "Base weights" in page.vram.legend.text().replace("&nbsp;", " ")
    assert page.is_ready()


def test_vram_bar_follows_num_generations(page, qtbot):
    before = page.vram.canvas.naive_total
    editor = page.hyper.editors["grpo.num_generations"]
    editor.widget.setValue(32)  # typed by the user: goes through the debounce
    qtbot.waitUntil(lambda: page.vram.result["settings"]["num_generations"] == 32, timeout=3000)
    assert page.vram.canvas.naive_total > before  # the naive plan's logits grow with the group size


def test_out_of_range_value_shows_under_its_field_and_blocks_start(page, qtbot):
    page.hyper.editors["optim.learning_rate"].widget.setText("fast")
    qtbot.waitUntil(lambda: not page.is_ready(), timeout=3000)
    error = page.hyper.editors["optim.learning_rate"].error
    assert error.isVisibleTo(page) and "optim.learning_rate" not in error.text() and "fast" in error.text()
    page.hyper.editors["optim.learning_rate"].widget.setText("1e-5")
    qtbot.waitUntil(page.is_ready, timeout=3000)
    assert not error.isVisibleTo(page)



def test_cross_field_error_shows_under_its_field(page, qtbot):
    """A cross-field check's error reaches its editor from ConfigError.fields (typed as a user would: each
    edit schedules the validation)."""
    page.algorithm.editors["grpo.use_adaptive_entropy"].widget.setChecked(True)
    page.algorithm.editors["grpo.entropy_coef_max"].widget.setValue(0.01)
    page.algorithm.editors["grpo.entropy_coef_min"].widget.setValue(0.05)
    error = page.algorithm.editors["grpo.entropy_coef_min"].error
    qtbot.waitUntil(lambda: not page.is_ready() and error.text() != "", timeout=3000)
    assert "must not exceed grpo.entropy_coef_max" in error.text()

def test_dataset_missing_column_shows_error_next_to_field(page, qtbot, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"{i}+1=", "label": str(i + 1)}) for i in range(5)) + "\n")
    page.dataset.path.setCurrentText(str(data))
    qtbot.waitUntil(lambda: page.dataset.preview is not None and page.dataset.preview["columns"] == ["text", "label"],
                    timeout=3000)
    qtbot.waitUntil(lambda: page.dataset.prompt_error.isVisibleTo(page), timeout=3000)
    assert "no column 'prompt'" in page.dataset.prompt_error.text()
    assert "text, label" in page.dataset.prompt_error.text()
    assert not page.start_button.isEnabled()
    assert page.dataset.table.columnCount() == 2 and page.dataset.table.rowCount() == 5
    page.dataset.prompt_column.setCurrentText("text")  # the user maps the right column
    qtbot.waitUntil(page.is_ready, timeout=3000)
    assert not page.dataset.prompt_error.isVisibleTo(page)
    assert page.collect()["dataset"]["answer_column"] == "label"  # detected as the answer


def test_unreadable_dataset_file_errors_at_the_path(page, qtbot, tmp_path):
    data = tmp_path / "broken.jsonl"
    data.write_text('{"prompt": "1+1=", \n')
    page.dataset.path.setCurrentText(str(data))
    qtbot.waitUntil(lambda: page.dataset.path_error.isVisibleTo(page), timeout=3000)
    assert "broken.jsonl" in page.dataset.path_error.text()
    assert not page.start_button.isEnabled()


def test_cli_preview_for_other_sources(page, qtbot, tmp_path):
    folder = tmp_path / "parquet_dataset"
    folder.mkdir()
    page.dataset.path.setCurrentText(str(folder))  # not a quick file: goes through `grpo-studio preview`
    qtbot.waitUntil(lambda: page.dataset.preview is not None and "question" in page.dataset.preview["columns"],
                    timeout=10000)
    qtbot.waitUntil(page.is_ready, timeout=3000)
    assert page.collect()["dataset"]["question_column"] == "question"


def test_custom_reward_with_missing_function(page, qtbot, tmp_path):
    rewards = tmp_path / "my_rewards.py"
    rewards.write_text("def length_bonus(prompts, completions, **kw):\n    return [0.0 for _ in completions]\n")
    row = page.rewards.add_custom(f"{rewards}:nope")
    qtbot.waitUntil(lambda: row.error.isVisibleTo(page), timeout=3000)
    assert "length_bonus" in row.error.text()
    assert not page.start_button.isEnabled()
    row.spec.setText(f"{rewards}:length_bonus")
    qtbot.waitUntil(page.is_ready, timeout=3000)


def test_unknown_model_errors_at_the_model(page, qtbot):
    page.model.combo.setCurrentText("/no/such/model-folder")
    qtbot.waitUntil(lambda: page.model.error.isVisibleTo(page), timeout=5000)
    assert "not found" in page.model.error.text()
    assert not page.start_button.isEnabled()


def test_presets_and_suggestions(page, qtbot):
    page._preset_chosen(4)  # 24 GB GPU on an 8 GB card: too big, with a suggestion that fits
    qtbot.waitUntil(lambda: page.vram.result is not None and page.vram.result["model"]["name"] != "demo",
                    timeout=5000)
    assert page.vram.result["verdict"] in ("too_big", "tight")
    suggestion = page.vram.result["suggestions"][0]
    assert page.vram.apply_button.isVisibleTo(page) == bool(suggestion["changes"])
    page.vram.apply_button.click()
    qtbot.waitUntil(lambda: page.vram.result is not None and page.vram.result["verdict"] == "fits", timeout=5000)


def test_start_writes_config_and_launches_the_engine(page, qtbot, runs_dir):
    started = []
    page.run_started_event.connect(started.append)
    page.start_action()
    assert len(started) == 1
    run_dir = Path(started[0])
    assert run_dir.parent == runs_dir and (run_dir / "config.yaml").is_file()
    from grpo_studio.engine.common.config import load_config
    assert load_config(run_dir / "config.yaml").model == "demo"
    qtbot.waitUntil(lambda: (run_dir / "status.json").exists(), timeout=10000)  # the (fake) engine took it


def test_copy_as_command_recreates_the_config(page):
    text = page.command_text()
    assert text.startswith("cat > config.yaml <<'EOF'\n")
    assert "train config.yaml" in text.splitlines()[-1]
    import yaml
    body = text.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    assert yaml.safe_load(body)["model"] == "demo"


def test_try_rewards_shows_each_function(page, qtbot):
    page.try_rewards_action()
    dialog = page.try_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 2, timeout=10000)
    headers = [dialog.table.horizontalHeaderItem(i).text() for i in range(dialog.table.columnCount())]
    assert headers == ["Prompt", "Completion", "math_correct", "format_strict", "Total"]
    dialog.close()


def test_the_gpu_is_announced_through_a_public_signal(page):
    seen = []
    page.gpu_event.connect(seen.append)
    page._gpu_done(None)
    assert seen == [None] and page.gpu is None


@pytest.fixture
def cpu_page(qtbot, tmp_path, monkeypatch, runs_dir):
    """The page on a machine without an NVIDIA GPU."""
    return new_run_page(qtbot, tmp_path, monkeypatch, "none", None)


def shown_text(page) -> str:
    return " ".join((page.vram.verdict.text(), page.vram.detail.text(), page.vram.legend.text()))


def test_cpu_only_demo_shows_ram_not_a_gpu(cpu_page):
    text = shown_text(cpu_page)
    assert cpu_page.vram.verdict.text() == "Fits in RAM"
    assert "of RAM" in text and "PyTorch" in text
    assert "CUDA" not in text and "GPU memory" not in text
    assert cpu_page.vram.canvas.isHidden()  # no bar with a GPU slice that cannot exist here
    from grpo_studio.gui.vram_bar import ENGINE_RAM
    plan = cpu_page.vram.result["plans"]["grpo_studio"]
    cpu_page.vram.set_result(cpu_page.vram.result, runs_on_cpu=True, ram={"total": 1 << 30,
                                                                             "available": ENGINE_RAM})
    assert cpu_page.vram.verdict.text() == "Too big for the RAM" and plan["total"] > 0


def test_cpu_only_real_model_says_which_gpu_it_needs(cpu_page, qtbot):
    cpu_page._preset_chosen(3)  # 12 GB GPU: a real model
    qtbot.waitUntil(lambda: cpu_page.vram.result is not None and cpu_page.vram.result["model"]["name"] != "demo",
                    timeout=5000)
    from grpo_studio.gui.vram_bar import needed_gpu_gb
    total = cpu_page.vram.result["plans"]["grpo_studio"]["total"]
    assert cpu_page.vram.verdict.text() == "Needs an NVIDIA GPU"
    assert f"needs one with ≥ {needed_gpu_gb(total)} GB" in cpu_page.vram.detail.text()
    assert "fine for the demo" not in shown_text(cpu_page) and cpu_page.vram.canvas.isHidden()
    assert needed_gpu_gb(11 << 30) == 13 and needed_gpu_gb(1) == 1


def demo_reward_listed(page) -> bool:
    from grpo_studio.engine.common.demo import demo_format_reward
    return any(r["name"] == demo_format_reward() for r in page.collect()["rewards"])


def test_leaving_the_demo_takes_its_settings_out(page, qtbot, tmp_path):
    assert demo_reward_listed(page)
    page.hyper.editors["grpo.num_generations"].widget.setValue(6)  # the user's own change stays
    qtbot.waitUntil(lambda: page.collect()["grpo"]["num_generations"] == 6 and not page._timer.isActive(),
                    timeout=3000)
    statuses = []
    page.status_event.connect(statuses.append)
    page.model.combo.setCurrentText("Qwen/Qwen2.5-1.5B-Instruct")
    qtbot.waitUntil(lambda: not demo_reward_listed(page), timeout=3000)
    data = page.collect()
    assert data["optim"]["learning_rate"] != 2e-3 and data["grpo"]["max_completion_length"] > 6
    assert data["dtype"] == "auto" and data["grpo"]["num_generations"] == 6
    assert statuses and "Left the demo" in statuses[-1]
    page._preset_chosen(2)  # a GPU preset afterwards: still no demo reward
    assert not demo_reward_listed(page)
    page.model.combo.setCurrentText("demo")  # and back: the demo gets its own settings again
    qtbot.waitUntil(lambda: demo_reward_listed(page), timeout=3000)
    assert page.collect()["optim"]["learning_rate"] == 2e-3


def test_a_gpu_preset_from_the_demo_drops_the_demo_reward(page):
    page._preset_chosen(2)
    assert page.collect()["model"] != "demo" and not demo_reward_listed(page)


def test_a_restored_model_says_it_was_restored(page, qtbot):
    page.model.combo.setCurrentText("Qwen/Qwen2.5-1.5B-Instruct")
    qtbot.waitUntil(lambda: page.vram.result is not None and page.vram.result["model"]["name"] != "demo",
                    timeout=5000)
    qtbot.waitUntil(lambda: page.is_ready(), timeout=5000)  # a valid config is what gets remembered
    again = NewRunPage(page.settings)
    qtbot.addWidget(again)
    assert again.collect()["model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert again.restored_note.isVisibleTo(again) and "Restored" in again.restored_note.text()
    assert "Qwen/Qwen2.5-1.5B-Instruct" in again.restored_note.text()
    again._preset_chosen(1)  # Demo (CPU): starts over, the note goes
    assert not again.restored_note.isVisibleTo(again) and again.collect()["model"] == "demo"
    fresh = NewRunPage(page.settings)  # the demo itself restored: nothing to say
    qtbot.addWidget(fresh)
    assert not fresh.restored_note.isVisibleTo(fresh)


def test_training_steps_tooltip_names_a_field_that_exists(page):
    steps, epochs = page.hyper.editors["max_steps"], page.hyper.editors["num_train_epochs"]
    assert "Epochs" in steps.widget.toolTip() and "epochs)" not in steps.widget.toolTip()
    assert not epochs.isEnabled()  # a step count is set: epochs do not count
    steps.widget.setValue(steps.widget.minimum())  # 'auto'
    assert steps.value() is None and epochs.isEnabled()
    epochs.widget.setValue(2.0)
    assert page.collect()["num_train_epochs"] == 2.0 and page.collect()["max_steps"] is None


def test_the_real_model_starter_is_a_choice_that_loads_its_settings(page, qtbot):
    from grpo_studio.engine.common.real_starter import LABEL, is_starter_model, real_config

    labels = [page.model.combo.itemText(i) for i in range(page.model.combo.count())]
    assert labels[:2] == ["demo", LABEL]
    statuses = []
    page.status_event.connect(statuses.append)
    page.model.combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: is_starter_model(page.collect()["model"]) and not page._timer.isActive(), timeout=5000)
    data, expected = page.collect(), real_config().to_dict()
    assert data["eval"] == expected["eval"] and data["dataset"] == expected["dataset"]
    assert data["grpo"]["max_completion_length"] == expected["grpo"]["max_completion_length"]
    assert statuses and "Real-model starter loaded" in statuses[-1]
    assert "SmolLM2-135M-Instruct" in page.model.info.text() and page.model.combo.currentText() == LABEL
    qtbot.waitUntil(lambda: page.vram.result is not None and page.vram.result["model"]["num_hidden_layers"] == 30,
                    timeout=5000)  # the estimate knows its shape, downloaded or not


def test_the_real_model_starter_trains_on_a_machine_without_a_gpu(cpu_page, qtbot):
    cpu_page.model.combo.setCurrentIndex(1)
    qtbot.waitUntil(lambda: cpu_page.vram.result is not None
                    and cpu_page.vram.result["model"]["num_hidden_layers"] == 30, timeout=5000)
    assert cpu_page.vram.verdict.text() == "Fits in RAM"
    qtbot.waitUntil(cpu_page.is_ready, timeout=10000)  # once its dataset preview is in: Start is on
