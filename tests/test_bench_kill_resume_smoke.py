"""Smoke test of the kill -9 / resume reliability benchmark at a tiny size."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))

import bench_kill_resume  # noqa: E402


@pytest.mark.slow  # three engine starts at least
def test_two_kills_resume_to_the_same_adapter(tmp_path, capsys):
    result = bench_kill_resume.main(["--steps", "12", "--kills", "2", "--checkpoint-every", "2",
                                     "--max-delay", "0.3", "--work-dir", str(tmp_path)])
    assert result["kills"] == 2
    assert result["resumes_succeeded"] == 2
    assert result["killed_runs_not_shown_crashed"] == 0
    assert result["corrupt_checkpoints"] == []
    assert result["final_state"] == "finished" and result["final_adapter_equal"] is True
    assert result["events_gap_free"] is True
    assert '"final_adapter_equal": true' in capsys.readouterr().out
