"""Start at login: `gui --tray --resume-interrupted` resumes crashed runs (and only those)."""
from test_runs_store import dead_pid, make_run

from grpo_studio.gui import app


def test_resume_interrupted_restarts_only_crashed_runs(runs_dir, monkeypatch):
    make_run(runs_dir, "cut-off", state="running", pid=dead_pid())
    make_run(runs_dir, "done", state="finished", pid=dead_pid(), done="finished")
    started = []
    monkeypatch.setattr(app, "start_detached", lambda argv, run_dir: started.append((argv, run_dir)) or 1)
    resumed = app.resume_interrupted_runs(runs_dir)
    assert [s.name for s in resumed] == ["cut-off"]
    assert started == [(["train", "--resume", "--run-dir", str(runs_dir / "cut-off")], runs_dir / "cut-off")]
