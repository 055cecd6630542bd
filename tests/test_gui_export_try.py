"""Export and Try pages against a fake `grpo-studio` that prints the recorded JSON lines of the real CLI."""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from grpo_studio.engine.common import runs as run_store  # noqa: E402
from grpo_studio.gui.export_page import ExportPage  # noqa: E402
from grpo_studio.gui.try_page import TryPage  # noqa: E402

FAKE_CLI = Path(__file__).parent / "data" / "fake_cli.py"


@pytest.fixture
def finished_run(tmp_path, monkeypatch):
    """One finished run with an adapter folder; the run store is stubbed to list just it."""
    run = tmp_path / "runs" / "2026-01-01_120000_demo"
    (run / "adapter").mkdir(parents=True)
    summary = SimpleNamespace(name=run.name, path=run, state="finished", model="demo", dataset="demo", step=60,
                              total_steps=60, started=1.0, best_reward=0.95, reward=0.9)
    monkeypatch.setattr(run_store, "list_runs", raising=False, value=lambda runs_dir=None: [summary])
    monkeypatch.setenv("GRPO_STUDIO_CLI", f"{sys.executable} {FAKE_CLI}")
    monkeypatch.setenv("FAKE_CLI_LOG", str(tmp_path / "calls.jsonl"))
    return run


def calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def test_export_shows_files_and_ollama_command(qtbot, tmp_path, finished_run):
    page = ExportPage()
    qtbot.addWidget(page)
    page.set_runs_dir(finished_run.parent)
    assert page.stack.currentIndex() == 1 and page.run.run_dir() == str(finished_run)
    page.ollama.setChecked(True)
    assert not page.export_button.isEnabled()  # Ollama needs a base GGUF
    page.ollama_base.setText("/models/base.gguf")
    assert page.export_button.isEnabled()
    page.export_action()
    qtbot.waitUntil(lambda: page.job is None, timeout=10000)
    assert page.table.rowCount() == 2
    assert page.table.item(0, 1).text() == "gguf"
    assert page.table.item(0, 2).text() == "1 KiB"
    assert "ollama create" in page.ollama_line.text()
    assert "writing GGUF" in page.log.toPlainText()
    args = calls(tmp_path)[-1]
    assert args[:2] == ["export", str(finished_run)]
    assert args[args.index("--gguf") + 1] == str(finished_run / "exports" / "adapter-f16.gguf")
    assert args[args.index("--ollama") + 1] == "/models/base.gguf" and args[-1] == "--json"
    assert page.error_panel.isHidden()


def test_export_asks_before_replacing_and_passes_force_only_on_yes(qtbot, tmp_path, finished_run, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    (finished_run / "exports").mkdir()
    (finished_run / "exports" / "adapter-f16.gguf").write_bytes(b"GGUF earlier")
    asked = []
    answer = QMessageBox.StandardButton.Cancel
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or answer)
    page = ExportPage()
    qtbot.addWidget(page)
    page.set_runs_dir(finished_run.parent)
    page.export_action()
    assert page.job is None and not (tmp_path / "calls.jsonl").exists()  # cancelled: nothing ran
    assert "adapter-f16.gguf" in asked[-1]
    answer = QMessageBox.StandardButton.Yes
    page.export_action()
    qtbot.waitUntil(lambda: page.job is None, timeout=10000)
    args = calls(tmp_path)[-1]
    assert "--force" in args and args[-1] == "--json"


def test_export_error_is_a_panel(qtbot, tmp_path, finished_run, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_FAIL", "1")
    page = ExportPage()
    qtbot.addWidget(page)
    page.set_runs_dir(finished_run.parent)
    page.export_action()
    qtbot.waitUntil(lambda: page.job is None, timeout=10000)
    assert page.error_panel.isVisibleTo(page)
    assert "no adapter" in page.error_panel.message.text()
    assert "finish or stop" in page.error_panel.hint.text()


def test_export_without_runs_shows_empty_state(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(run_store, "list_runs", raising=False, value=lambda runs_dir=None: [])
    page = ExportPage()
    qtbot.addWidget(page)
    page.set_runs_dir(tmp_path)
    assert page.stack.currentIndex() == 0


def test_try_keeps_one_engine_for_two_generates(qtbot, tmp_path, finished_run):
    """Two Generates, one `chat --serve` process (one model load); each request carries its own prompt."""
    page = TryPage()
    qtbot.addWidget(page)
    page.set_runs_dir(finished_run.parent)
    page.generate_action()  # no prompt yet: nothing runs
    assert page.job is None
    page.prompt.setPlainText("7+5=")
    page.answer.setText("12")
    page.generate_action()
    qtbot.waitUntil(lambda: not page.generating, timeout=10000)
    assert page.panels["base"].text.toPlainText() == "base: 7+5="
    assert "Reward 1.00" in page.panels["tuned"].rewards.text()
    assert "math_correct 0.00" in page.panels["base"].rewards.text()
    engine = page.job
    assert engine is not None and engine.running()  # still there, model loaded
    page.prompt.setPlainText("2+2=")
    page.answer.setText("")
    page.generate_action()
    qtbot.waitUntil(lambda: not page.generating, timeout=10000)
    assert page.panels["tuned"].text.toPlainText() == "tuned: 2+2="
    assert "Reward 0.00" in page.panels["tuned"].rewards.text()
    assert page.job is engine
    assert calls(tmp_path) == [["chat", str(finished_run), "--serve", "--json"]]
    page.stop_engine()
    qtbot.waitUntil(lambda: not engine.running(), timeout=5000)  # closing its stdin ends it


def test_try_stop_keeps_the_engine_and_a_new_run_replaces_it(qtbot, tmp_path, finished_run):
    page = TryPage()
    qtbot.addWidget(page)
    page.set_runs_dir(finished_run.parent)
    page.prompt.setPlainText("slow")
    page.generate_action()
    qtbot.waitUntil(lambda: len(page.panels["base"].text.toPlainText()) >= 3, timeout=10000)
    assert page.stop_button.isEnabled()
    page.stop_action()
    qtbot.waitUntil(lambda: not page.generating, timeout=5000)
    engine = page.job
    assert engine.running() and page.generate_button.isEnabled()
    page._run_changed("/another/run")  # the run choice moved: that model is let go
    assert page.job is None
    qtbot.waitUntil(lambda: not engine.running(), timeout=5000)


def test_try_engine_failure_is_a_panel(qtbot, tmp_path, finished_run, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_FAIL", "1")
    page = TryPage()
    qtbot.addWidget(page)
    page.set_runs_dir(finished_run.parent)
    page.prompt.setPlainText("7+5=")
    page.generate_action()
    qtbot.waitUntil(lambda: page.job is None, timeout=10000)
    assert not page.error_panel.isHidden() and "no adapter" in page.error_panel.message.text()
    assert page.generate_button.isEnabled() and not page.generating


def test_try_says_the_model_could_not_load_when_the_base_model_is_missing(qtbot):
    """chat finds the base model as export does (its error kind is export's): Try must not title it "Export
    failed"."""
    page = TryPage()
    qtbot.addWidget(page)
    page._line({"type": "error", "kind": "export", "message": "the base model x.gguf is not on this machine",
                "hint": "put the GGUF file back where it was"})
    assert page.error_panel.title.text() == "Could not load the model"
    assert "not on this machine" in page.error_panel.message.text()
