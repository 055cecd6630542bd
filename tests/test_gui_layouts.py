"""The New run, Runs, Export and Try pages hold at 1000x700 and at 1600x1000: no widget on top of another, none
squashed below its minimum size, every table column on screen or reachable (geometry checks on the real window,
laid out by Qt; see layout_checks.py)."""
import json
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtGui import QIcon  # noqa: E402

from grpo_studio.engine.common.config import save_config  # noqa: E402
from grpo_studio.engine.common.demo import demo_config  # noqa: E402
from layout_checks import columns_on_screen, layout_problems  # noqa: E402

SIZES = [(1000, 700), (1600, 1000)]
DATA = Path(__file__).parent / "data"


def make_run(runs_dir, name: str, state: str, model: str, adapter: bool = False):
    run = runs_dir / name
    run.mkdir(parents=True)
    config = demo_config()
    config.model = model
    save_config(config, run / "config.yaml")
    (run / "status.json").write_text(json.dumps({"pid": None, "state": state, "started": time.time() - 600,
                                                 "step": 250, "total_steps": 500}))
    if adapter:
        (run / "adapter").mkdir()
    shutil.copy(DATA / "demo_events.jsonl", run / "events.jsonl")  # rewards and durations fill their columns
    return run


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, runs_dir):
    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("GRPO_STUDIO_GPU", "NVIDIA GeForce RTX 3060, 12288, 11650")
    from grpo_studio.gui.main_window import MainWindow
    from grpo_studio.gui.settings import AppSettings

    make_run(runs_dir, "2026-12-01_101500_Qwen2.5-1.5B-Instruct", "stopped", "Qwen/Qwen2.5-1.5B-Instruct", True)
    make_run(runs_dir, "2026-12-02_204500_Qwen2.5-3B-Instruct", "failed", "Qwen/Qwen2.5-3B-Instruct")
    make_run(runs_dir, "2026-12-03_093000_demo", "finished", "demo", True)
    make_run(runs_dir, "2026-12-03_160712_deepseek-ai-DeepSeek-R1-Distill-Qwen-1.5B", "stopped",
             "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    widget = MainWindow(AppSettings(), QIcon())
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def settle(qtbot, window, size, page: int) -> None:
    window.resize(*size)
    window.show_page(page)
    qtbot.wait(50)


@pytest.mark.parametrize("size", SIZES)
def test_new_run_page_holds(qtbot, window, size):
    settle(qtbot, window, size, 0)
    qtbot.waitUntil(lambda: window.new_run.vram.result is not None, timeout=5000)
    window.new_run.hyper.advanced_button.setChecked(True)  # the longest form
    qtbot.wait(50)
    assert layout_problems(window.new_run) == []


@pytest.mark.parametrize("size", SIZES)
def test_runs_page_shows_every_column(qtbot, window, size):
    settle(qtbot, window, size, 2)
    assert layout_problems(window.runs) == []
    model = window.runs.model
    shown = [c for i, c in enumerate(model.COLUMNS) if not window.runs.table.isColumnHidden(i)]  # Held-out: no eval
    assert columns_on_screen(window.runs.table) == shown  # all of them, without scrolling


@pytest.mark.parametrize("size", SIZES)
def test_runs_page_shows_every_column_with_a_held_out_evaluation(qtbot, window, size, runs_dir):
    events = runs_dir / "2026-12-03_093000_demo" / "events.jsonl"
    with events.open("a") as handle:  # a run that evaluated: the Held-out column appears
        for seq, (step, accuracy) in enumerate(((0, 0.23), (600, 0.92)), start=100000):
            handle.write(json.dumps({"type": "eval", "seq": seq, "time": 1.0, "step": step, "accuracy": accuracy,
                                     "reward": accuracy, "num_prompts": 64}) + "\n")
    window.runs.refresh()
    settle(qtbot, window, size, 2)
    assert layout_problems(window.runs) == []
    assert columns_on_screen(window.runs.table) == list(window.runs.model.COLUMNS)


@pytest.mark.parametrize("size", SIZES)
def test_export_page_holds_with_results(qtbot, window, size, runs_dir):
    settle(qtbot, window, size, 3)
    page = window.export
    assert page.stack.currentIndex() == 1
    exports = runs_dir / "2026-12-03_093000_demo" / "exports"
    page._show_result({"files": [{"path": str(exports / "adapter-q8_0.gguf"), "kind": "gguf", "bytes": 77824},
                                 {"path": str(exports / "Modelfile"), "kind": "modelfile", "bytes": 420}],
                       "ollama_command": f"ollama create 2026-12-03_093000_demo -f {exports / 'Modelfile'}"})
    page.ollama.setChecked(True)
    page.merged.setChecked(True)
    qtbot.wait(50)
    assert layout_problems(page) == []
    assert columns_on_screen(page.table) == ["File", "Kind", "Size"]


@pytest.mark.parametrize("size", SIZES)
def test_try_page_holds(qtbot, window, size):
    settle(qtbot, window, size, 4)
    page = window.try_page
    for panel in page.panels.values():
        panel.show_answer({"text": "<answer>12</answer>", "rewards": {"math_correct": 1.0, "answer_format": 0.0},
                           "reward": 1.0})
    qtbot.wait(50)
    assert layout_problems(page) == []
