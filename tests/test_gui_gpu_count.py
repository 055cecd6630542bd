"""The GPU-count selector on the New-run page: hidden on a machine with one GPU (or none), shown with a faked
detection of several, and it sets the config's `gpus`."""
import pytest

pytest.importorskip("pytestqt")

from grpo_studio.engine.common.estimate_gpu import gpu_count  # noqa: E402
from test_gui_new_run import new_run_page  # noqa: E402

FOUR = "\n".join(f"NVIDIA GeForce RTX 4090, 24564, {24000 - i}" for i in range(4))
GPU = {"name": "NVIDIA GeForce RTX 4090", "total": 24564 << 20, "free": 24000 << 20}


def test_detection_counts_the_faked_gpus(monkeypatch):
    monkeypatch.setenv("GRPO_STUDIO_GPU", FOUR)
    assert gpu_count() == 4
    monkeypatch.setenv("GRPO_STUDIO_GPU", "none")
    assert gpu_count() == 0
    monkeypatch.setenv("GRPO_STUDIO_GPU", "NVIDIA GeForce RTX 3060, 12288, 11650")
    assert gpu_count() == 1


def test_several_gpus_show_the_selector_and_set_the_config(qtbot, tmp_path, monkeypatch, runs_dir):
    page = new_run_page(qtbot, tmp_path, monkeypatch, FOUR, GPU)
    page.detect_gpu_async()  # the real detection thread, on the faked four GPUs
    qtbot.waitUntil(lambda: page.gpus.available == 4, timeout=5000)
    page.show()
    assert page.gpus.isVisible() and page.gpus.of.text() == "of 4 GPUs" and page.gpus.spin.maximum() == 4
    page.data["batch"]["prompts_per_step"] = 4
    page.load_data(page.data)
    page.gpus.spin.setValue(2)
    page.validate()
    assert page.config is not None and page.config.gpus == 2 and page.collect()["gpus"] == 2


def test_one_gpu_hides_it_and_keeps_the_loaded_value(qtbot, tmp_path, monkeypatch, runs_dir):
    page = new_run_page(qtbot, tmp_path, monkeypatch, "NVIDIA GeForce RTX 3060, 12288, 11650", GPU)
    page.detect_gpu_async()
    qtbot.waitUntil(lambda: page.gpus.available == 1, timeout=5000)
    page.show()
    assert not page.gpus.isVisible()
    page.data["gpus"] = 1
    page.load_data(page.data)
    assert page.collect()["gpus"] == 1
