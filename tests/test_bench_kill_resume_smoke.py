"""Smoke test of the kill -9 / resume reliability benchmark at a tiny size."""
from pathlib import Path

import pytest

from script_module import load_script

bench_kill_resume = load_script(Path(__file__).parent / "benchmarks" / "bench_kill_resume.py")


@pytest.mark.slow  # three engine starts at least
def test_two_kills_resume_to_the_same_adapter(tmp_path, capsys):
    result = bench_kill_resume.main(["--steps", "12", "--kills", "2", "--checkpoint-every", "2",
                                     "--max-delay", "0.3", "--work-dir", str(tmp_path)])
    assert result["kills"] == 2
    assert result["resumes_succeeded"] == 2
    # each resume trained the step after its last complete checkpoint first, not step 1 again
    assert len(result["resume_steps"]) == 2 and result["resumes_started_after_last_checkpoint"] is True
    assert all(r["first"] == r["expected"] for r in result["resume_steps"])
    assert result["final_adapter_trained"] is True
    assert result["killed_runs_not_shown_crashed"] == 0
    assert result["corrupt_checkpoints"] == []
    assert result["final_state"] == "finished" and result["final_adapter_equal"] is True
    assert result["events_gap_free"] is True
    assert '"final_adapter_equal": true' in capsys.readouterr().out
