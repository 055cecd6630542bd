"""Screenshots of every screen of the real app window, for the README and for looking at the app as a
newcomer would. Run under a display (Xvfb is enough):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/take_screenshots.py [--theme light|dark]

Writes resources/screenshots/{new_run,monitor,runs,tray_menu,error,export,try}.png. The Monitor shows the
recorded demo run in tests/data/demo_events.jsonl; Export and Try run against tests/data/fake_cli.py (the
recorded output of the real commands), so no model or GPU is needed. Settings and runs live in a temp folder.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
OUT = ROOT / "resources" / "screenshots"


def prepare_env(temp: Path) -> None:
    os.environ["GRPO_STUDIO_SETTINGS"] = str(temp / "settings.ini")
    os.environ["GRPO_STUDIO_RUNS_DIR"] = str(temp / "runs")
    os.environ["GRPO_STUDIO_INSTANCE"] = f"grpo-studio-screenshots-{os.getpid()}"
    os.environ["GRPO_STUDIO_GPU"] = "NVIDIA GeForce RTX 3060, 12288, 11650"
    os.environ["GRPO_STUDIO_CLI"] = f"{sys.executable} {DATA / 'fake_cli.py'}"
    os.environ["HF_HUB_OFFLINE"] = "1"


def make_runs(runs: Path) -> dict[str, Path]:
    """A runs folder like a user's after a few evenings: finished, live, crashed and stopped runs."""
    from grpo_studio.engine.config import save_config
    from grpo_studio.engine.demo import demo_config

    lines = (DATA / "demo_events.jsonl").read_text().splitlines(keepends=True)
    total = json.loads(lines[0]).get("total_steps") or 0
    now = time.time()
    made = {}
    cut = len(lines) * 2 // 3  # the live run is two thirds through the recording
    specs = [("2026-03-02_201500_demo", "finished", None, lines, now - 86400 * 2),
             ("2026-03-03_214012_Qwen2.5-1.5B-Instruct", "stopped", None, lines[: len(lines) // 2], now - 86400),
             ("2026-03-04_190233_Qwen2.5-3B-Instruct", "running", 999_999_9, lines[: len(lines) // 4], now - 7200),
             ("2026-03-04_221705_demo", "running", os.getpid(), lines[:cut], now - 60)]
    for name, state, pid, events, started in specs:
        run = runs / name
        run.mkdir(parents=True)
        config = demo_config()
        if "Qwen" in name:
            config.model = "Qwen/" + name.split("_", 2)[2]
        save_config(config, run / "config.yaml")
        (run / "events.jsonl").write_text("".join(events))
        step = sum(1 for line in events if '"type":"metrics"' in line)
        (run / "status.json").write_text(json.dumps({"pid": pid, "state": state, "started": started, "step": step,
                                                     "total_steps": total}))
        if state in ("finished", "stopped"):
            (run / "adapter").mkdir()
        made[name] = run
    oom = runs / "2026-03-04_230011_Qwen2.5-3B-Instruct"
    oom.mkdir()
    shutil.copy(DATA / "oom_events.jsonl", oom / "events.jsonl")
    (oom / "status.json").write_text(json.dumps({"pid": None, "state": "failed", "started": now - 30}))
    made["oom"] = oom
    return made


def total_steps_in(run: Path) -> int:
    """The step a fake run's status.json says it reached."""
    return int(json.loads((run / "status.json").read_text()).get("step") or 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theme", default="light", choices=["light", "dark"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="grpo-studio-shots-"))
    prepare_env(temp)
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from grpo_studio.gui import theme
    from grpo_studio.gui.main_window import MainWindow
    from grpo_studio.gui.settings import AppSettings
    from grpo_studio.gui.widgets import icon_path

    app = QApplication(sys.argv[:1])
    app.setApplicationName("GRPO Studio")
    settings = AppSettings()
    settings.theme = args.theme
    theme.apply(app, args.theme)
    runs = make_runs(temp / "runs")
    window = MainWindow(settings, QIcon(icon_path()))
    window.resize(1360, 900)
    window.show()
    window.start_background()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.theme == "light" else "_dark"

    def settle(seconds: float = 0.8) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.02)

    def until(condition, seconds: float = 15.0) -> None:
        end = time.time() + seconds
        while time.time() < end and not condition():
            app.processEvents()
            time.sleep(0.02)

    def shot(name: str, widget=None) -> None:
        settle(0.4)
        path = args.out / f"{name}{suffix}.png"
        (widget or window).grab().save(str(path))
        print(f"wrote {path}")

    # New run: the 12 GB preset on a 12 GB card, with the VRAM bar.
    window.show_page(0)
    window.new_run._preset_chosen(3)
    until(lambda: window.new_run.vram.result is not None and window.new_run.vram.result["model"]["name"] != "demo")
    shot("new_run")

    # Monitor mid-run: the live demo run (this process is its "engine", so the controls are active).
    live = runs["2026-03-04_221705_demo"]
    window.open_run(str(live))
    until(lambda: window.monitor.data.step >= total_steps_in(live))  # all recorded steps replayed
    window.monitor._refresh()
    shot("monitor")
    window.monitor.tabs.setCurrentIndex(1)
    window.monitor.samples.setCurrentCell(0, 1)
    shot("monitor_samples")
    window.monitor.tabs.setCurrentIndex(0)

    # An engine error as the user sees it.
    window.open_run(str(runs["oom"]))
    until(lambda: window.monitor.data.done is not None)
    window.monitor._refresh()
    shot("error")

    # Runs.
    window.show_page(2)
    window.runs.refresh()
    window.runs.select(runs["2026-03-03_214012_Qwen2.5-1.5B-Instruct"])
    shot("runs")

    # Tray menu (rendered as the menu the tray opens).
    window.active.poll()
    menu = window.tray.rebuild_menu()
    menu.popup(window.mapToGlobal(window.rect().center()))
    settle(0.5)
    first_run = next((a.menu() for a in menu.actions() if a.menu() is not None), None)
    shot("tray_menu", menu)
    if first_run is not None:
        first_run.popup(window.mapToGlobal(window.rect().center()))
        shot("tray_menu_run", first_run)
        first_run.hide()
    menu.hide()

    # Export (against the recorded CLI output).
    window.show_page(3)
    window.export.select_run(str(runs["2026-03-02_201500_demo"]))
    window.export.ollama.setChecked(True)
    window.export.ollama_base.setText(str(Path.home() / "models" / "demo-f16.gguf"))
    window.export.export_action()
    until(lambda: window.export.job is None)
    shot("export")

    # Try.
    window.show_page(4)
    window.try_page.select_run(str(runs["2026-03-02_201500_demo"]))
    window.try_page.prompt.setPlainText("7+5=")
    window.try_page.answer.setText("12")
    window.try_page.generate_action()
    until(lambda: window.try_page.job is None)
    shot("try")

    window.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
