"""The New-run page's Download button against the stand-in Hub: the size first, progress while it runs,
cancel keeps finished files, then a complete download that lists the model in the cache."""
import os

import pytest

from stand_in_hub import stand_in_hub  # noqa: F401 - the fixture
from test_hub_download import MODEL, model_files, sharded_files

pytest.importorskip("pytestqt")


@pytest.fixture
def picker(qtbot, stand_in_hub, monkeypatch):
    from grpo_studio.gui import download_panel
    from grpo_studio.gui.model_picker import ModelPicker

    monkeypatch.delenv("GRPO_STUDIO_CLI", raising=False)  # the real CLI, talking to the stand-in Hub
    monkeypatch.setattr(download_panel, "PLAN_DELAY_MS", 10)
    widget = ModelPicker()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_download_button_shows_size_progress_cancel_and_finishes(picker, qtbot, stand_in_hub):
    # huggingface_hub reports bytes per 10 MiB chunk (or file): a small shard that finishes early moves the bar
    stand_in_hub.add_repo(MODEL, sharded_files(1_000_000, 4_000_000))
    stand_in_hub.bytes_per_s = 1_500_000  # per connection: the big shard takes ~3 s, long enough to cancel
    panel = picker.download
    picker.combo.setCurrentText(MODEL)
    qtbot.waitUntil(lambda: panel.download_button.isVisible(), timeout=30000)
    assert "to download (7 files)" in panel.status.text() and "MiB" in panel.status.text()

    panel.download_button.click()
    qtbot.waitUntil(lambda: 0 < panel.bar.value() < 1000 and " left" in panel.status.text(), timeout=30000)
    assert panel.cancel_button.isVisible() and "/s" in panel.status.text()
    panel.cancel_action()
    qtbot.waitUntil(lambda: not panel.busy(), timeout=30000)
    assert "cancelled" in panel.status.text() and panel.download_button.isVisible()
    fetched = dict(stand_in_hub.gets[MODEL])
    assert fetched["model-00001-of-00002.safetensors"] == 1 and fetched["config.json"] == 1

    stand_in_hub.bytes_per_s = None
    with qtbot.waitSignal(panel.downloaded_event, timeout=30000) as done:
        panel.download_button.click()
    assert done.args[0] == MODEL and os.path.isdir(done.args[1])
    gets = stand_in_hub.gets[MODEL]  # finished before the cancel: not fetched again
    assert gets["config.json"] == gets["model-00001-of-00002.safetensors"] == 1
    assert "is in the Hugging Face cache" in panel.status.text()
    qtbot.waitUntil(lambda: any(m["repo_id"] == MODEL for m in picker.cached), timeout=30000)


def test_gated_model_and_cached_model(picker, qtbot, stand_in_hub):
    stand_in_hub.add_repo("org/Gated-1B", model_files(), gated=True)
    panel = picker.download
    picker.combo.setCurrentText("org/Gated-1B")
    qtbot.waitUntil(lambda: panel.download_button.isVisible(), timeout=30000)  # its file list is public
    panel.download_button.click()
    qtbot.waitUntil(lambda: "gated" in panel.status.text(), timeout=30000)
    assert "Settings" in panel.status.text()
    picker.combo.setCurrentText("./a/local/folder")
    assert not panel.isVisible()


def test_dataset_download_then_preview(qtbot, stand_in_hub, monkeypatch):
    from grpo_studio.gui import download_panel
    from grpo_studio.gui.dataset_picker import DatasetPicker

    monkeypatch.delenv("GRPO_STUDIO_CLI", raising=False)
    monkeypatch.setattr(download_panel, "PLAN_DELAY_MS", 10)
    rows = b'{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": "4"}\n'
    stand_in_hub.add_repo("someone/arith-v1.5", {"train.jsonl": rows}, repo_type="dataset")
    picker = DatasetPicker()
    qtbot.addWidget(picker)
    picker.show()
    picker.path.setCurrentText("someone/arith-v1.5")
    qtbot.waitUntil(lambda: picker.download.download_button.isVisible(), timeout=30000)
    qtbot.waitUntil(lambda: picker.preview_error is not None, timeout=30000)  # not readable before
    picker.download.download_button.click()
    qtbot.waitUntil(lambda: picker.preview is not None, timeout=60000)
    assert picker.preview["columns"] == ["question", "answer"]


def test_with_downloads_off_the_panel_says_only_that(picker, qtbot, stand_in_hub, monkeypatch):
    from grpo_studio.gui.download_panel import OFFLINE_TEXT

    stand_in_hub.add_repo(MODEL, model_files())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the CLI the panel starts inherits it
    panel = picker.download
    picker.combo.setCurrentText(MODEL)
    qtbot.waitUntil(lambda: panel.plan_job is not None and not panel.plan_job.running(), timeout=30000)
    qtbot.waitUntil(lambda: panel.status.text() == OFFLINE_TEXT, timeout=30000)
    assert panel.isVisible() and not panel.download_button.isVisible()
    assert stand_in_hub.gets.get(MODEL) in (None, {})  # nothing was asked of the Hub
