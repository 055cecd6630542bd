"""Screenshots of every screen of the real app window, for the README and for looking at the app as a
newcomer would. Run under a display (Xvfb is enough):

    xvfb-run -a -s "-screen 0 1700x1100x24" .venv/bin/python scripts/take_screenshots.py [--theme light|dark]
        [--sizes 1600x1000,1000x700] [--pages new_run,monitor,...] [--out DIR]

Writes resources/screenshots/{new_run,monitor,monitor_samples,monitor_alarm,monitor_group,error,runs,tray_menu,
export,try}.png at the first
size and NAME_WxH.png at every other size (the window is resized and each page taken again). First it trains the
real demo (about 20 s on 2 CPU cores) into a temp runs folder: that finished run is the one Runs, Export and
Try show, and Export and Try run the real `grpo-studio export` / `chat` on it. The other runs around it (live,
stopped, crashed) replay that run's own events.jsonl, the failed one tests/data/oom_events.jsonl, with their
times moved to today, so the Runs table reads like a user's. Settings and runs live in a temp folder; no GPU is needed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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
    os.environ.pop("GRPO_STUDIO_CLI", None)  # the real CLI: Export and Try show what the commands really do
    os.environ["HF_HUB_OFFLINE"] = "1"


def train_demo(run: Path, steps: int = 300) -> None:
    """A real, finished demo run (the engine in its own process, as the app starts it)."""
    subprocess.run([sys.executable, "-m", "grpo_studio", "train", "--demo", "--steps", str(steps),
                    "--run-dir", str(run), "--quiet"], check=True, cwd=tempfile.gettempdir())


def shifted(lines: list[str], started: float) -> list[str]:
    """Recorded events with their times moved so that the first one is at `started`."""
    events = [json.loads(line) for line in lines]
    first = events[0]["time"]
    return [json.dumps({**e, "time": round(started + e["time"] - first, 3)}, separators=(",", ":")) + "\n"
            for e in events]


def make_runs(runs: Path) -> dict[str, Path]:
    """A runs folder like a user's after a few evenings: finished, live, crashed and stopped runs."""
    from grpo_studio.engine.common.config import save_config
    from grpo_studio.engine.common.demo import demo_config

    import psutil

    now = time.time()
    made = {"finished": runs / f"{time.strftime('%Y-%m-%d_%H%M%S', time.localtime(now))}_demo"}
    train_demo(made["finished"])
    # The other runs replay this real run's own record (today's engine: every field the Monitor shows).
    lines = (made["finished"] / "events.jsonl").read_text().splitlines(keepends=True)
    total = json.loads(lines[0]).get("total_steps") or 0
    cut = len(lines) * 2 // 3  # the live run is two thirds through the recording
    # The live run's "engine" is this process, started after it (a status older than its pid reads as crashed).
    this_process = max(time.time(), psutil.Process().create_time() + 1.0)
    specs = [("stopped", "Qwen2.5-1.5B-Instruct", None, lines[: len(lines) // 2], now - 86400),
             ("crashed", "Qwen2.5-3B-Instruct", 999_999_9, lines[: len(lines) // 4], now - 7200),
             ("live", "demo", os.getpid(), lines[:cut], this_process)]
    for key, model, pid, events, started in specs:
        run = runs / f"{time.strftime('%Y-%m-%d_%H%M%S', time.localtime(started))}_{model}"
        run.mkdir(parents=True)
        config = demo_config()
        if model != "demo":
            config.model = f"Qwen/{model}"
        save_config(config, run / "config.yaml")
        (run / "events.jsonl").write_text("".join(shifted(events, started)))
        step = sum(1 for line in events if '"type":"metrics"' in line)
        state = {"stopped": "stopped", "crashed": "running", "live": "running"}[key]
        (run / "status.json").write_text(json.dumps({"pid": pid, "state": state, "started": started, "step": step,
                                                     "total_steps": total}))
        if state == "stopped":
            (run / "adapter").mkdir()
        made[key] = run
    started = now - 30
    oom = runs / f"{time.strftime('%Y-%m-%d_%H%M%S', time.localtime(started))}_Qwen2.5-3B-Instruct"
    oom.mkdir()
    config = demo_config()
    config.model = "Qwen/Qwen2.5-3B-Instruct"
    save_config(config, oom / "config.yaml")
    (oom / "events.jsonl").write_text("".join(shifted((DATA / "oom_events.jsonl").read_text().splitlines(), started)))
    (oom / "status.json").write_text(json.dumps({"pid": None, "state": "failed", "started": started, "step": 1,
                                                 "total_steps": 500}))
    made["oom"] = oom
    # a finished run whose reward was gamed (tests/data/record_alarm_events.py): the alarms and its groups
    started = now - 3 * 3600
    gamed = runs / f"{time.strftime('%Y-%m-%d_%H%M%S', time.localtime(started))}_demo-long-answers"
    gamed.mkdir()
    save_config(demo_config(), gamed / "config.yaml")
    (gamed / "events.jsonl").write_text("".join(shifted((DATA / "runaway_events.jsonl").read_text().splitlines(),
                                                        started)))
    (gamed / "status.json").write_text(json.dumps({"pid": None, "state": "finished", "started": started,
                                                   "step": 40, "total_steps": 40}))
    made["alarm"] = gamed
    return made


def total_steps_in(run: Path) -> int:
    """The step a fake run's status.json says it reached."""
    return int(json.loads((run / "status.json").read_text()).get("step") or 1)


PAGES = ("new_run", "monitor", "alarm", "error", "runs", "tray_menu", "export", "try")


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--theme", default="light", choices=["light", "dark"])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--sizes", default="1600x1000,1000x700",
                        help="window sizes, comma-separated; the first one gets the plain names the README uses")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"which screens, comma-separated ({', '.join(PAGES)})")
    args = parser.parse_args()
    sizes = [parse_size(text) for text in args.sizes.split(",") if text.strip()]
    pages = [name.strip() for name in args.pages.split(",") if name.strip()]
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown pages: {', '.join(unknown)} (choose from {', '.join(PAGES)})")
    temp = Path(tempfile.mkdtemp(prefix="grpo-studio-shots-"))
    prepare_env(temp)
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from grpo_studio.gui import theme
    from grpo_studio.gui.main_window import MainWindow
    from grpo_studio.gui.settings import AppSettings
    from grpo_studio.gui.wheel_guard import install_wheel_guard
    from grpo_studio.gui.widgets import icon_path

    app = QApplication(sys.argv[:1])
    install_wheel_guard(app)
    app.setApplicationName("GRPO Studio")
    settings = AppSettings()
    settings.theme = args.theme
    theme.apply(app, args.theme)
    runs = make_runs(temp / "runs")
    window = MainWindow(settings, QIcon(icon_path()))
    window.resize(*sizes[0])
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

    for number, size in enumerate(sizes):
        window.resize(*size)
        settle(0.6)
        size_suffix = "" if number == 0 else f"_{size[0]}x{size[1]}"

        def shot(name: str, widget=None) -> None:
            settle(0.4)
            path = args.out / f"{name}{size_suffix}{suffix}.png"
            (widget or window).grab().save(str(path))
            print(f"wrote {path}")

        first = number == 0  # the commands run once; later sizes show the same results
        for page in pages:
            SCREENS[page](window, runs, shot, settle, until, first)

    window.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
    return 0


def new_run_screen(window, runs, shot, settle, until, first) -> None:
    """The 12 GB preset on a 12 GB card, with the VRAM bar."""
    window.show_page(0)
    if first:
        window.new_run._preset_chosen(3)
        until(lambda: window.new_run.vram.result is not None and window.new_run.vram.result["model"]["name"] != "demo")
    shot("new_run")


def monitor_screen(window, runs, shot, settle, until, first) -> None:
    """Mid-run: the live demo run (this process is its "engine", so the controls are active)."""
    live = runs["live"]
    window.open_run(str(live))
    until(lambda: window.monitor.data.step >= total_steps_in(live))  # all recorded steps replayed
    window.monitor._refresh()
    shot("monitor")
    window.monitor.tabs.setCurrentIndex(1)
    window.monitor.group_view.table.setCurrentCell(0, 1)  # the best completion of the newest group, read whole
    shot("monitor_samples")
    window.monitor.tabs.setCurrentIndex(0)


def alarm_screen(window, runs, shot, settle, until, first) -> None:
    """A run that gamed its reward: the alarms on the Learning-signal card, then a step's G completions
    (the first group whose completions ran to the length limit)."""
    window.open_run(str(runs["alarm"]))
    until(lambda: window.monitor.data.done is not None)
    window.monitor._dirty = True
    window.monitor._refresh()
    shot("monitor_alarm")
    window.monitor.tabs.setCurrentIndex(1)
    view = window.monitor.group_view
    index = next((i for i, g in enumerate(view.groups) if any(c.get("truncated") for c in g["completions"])), 0)
    view._chosen(index)
    view.table.setCurrentCell(0, 1)
    shot("monitor_group")
    window.monitor.tabs.setCurrentIndex(0)


def error_screen(window, runs, shot, settle, until, first) -> None:
    """An engine error as the user sees it."""
    window.open_run(str(runs["oom"]))
    until(lambda: window.monitor.data.done is not None)
    window.monitor._refresh()
    shot("error")


def runs_screen(window, runs, shot, settle, until, first) -> None:
    window.show_page(2)
    window.runs.refresh()
    window.runs.select(runs["finished"])
    shot("runs")


def tray_screen(window, runs, shot, settle, until, first) -> None:
    """The tray menu, rendered as the menu the tray opens."""
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


def export_screen(window, runs, shot, settle, until, first) -> None:
    """The real command on the real demo run (GGUF q8_0 + merged model folder)."""
    window.show_page(3)
    if first:
        window.export.select_run(str(runs["finished"]))
        window.export.outtype.setCurrentText("q8_0")
        window.export.merged.setChecked(True)
        window.export.export_action()
        until(lambda: window.export.job is None, seconds=120)
    shot("export")


def try_screen(window, runs, shot, settle, until, first) -> None:
    """Base vs tuned on the real demo run (the page's chat engine loads the model on the first Generate)."""
    window.show_page(4)
    if first:
        window.try_page.select_run(str(runs["finished"]))
        window.try_page.prompt.setPlainText("7+5=")
        window.try_page.answer.setText("12")
        window.try_page.generate_action()
        until(lambda: not window.try_page.generating, seconds=120)
    shot("try")


SCREENS = {"new_run": new_run_screen, "monitor": monitor_screen, "alarm": alarm_screen, "error": error_screen,
           "runs": runs_screen,
           "tray_menu": tray_screen, "export": export_screen, "try": try_screen}


if __name__ == "__main__":
    raise SystemExit(main())
