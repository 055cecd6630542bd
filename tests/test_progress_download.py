"""The terminal view of a run's download: one line for the download phase, a byte bar with speed and ETA,
then the step bar once training starts."""
import io

from grpo_studio.engine.run.progress import ProgressPrinter


def test_download_bar_then_step_bar():
    out = io.StringIO()
    printer = ProgressPrinter(file=out, mininterval=0)
    printer.handle({"type": "phase", "phase": "downloading", "what": "model", "repo_id": "org/M-0.5B",
                    "files": 5, "total_bytes": 4 * 2**20, "missing_bytes": 4 * 2**20})
    for done in (2**20, 3 * 2**20, 4 * 2**20):
        printer.handle({"type": "progress", "phase": "downloading", "repo_id": "org/M-0.5B", "step": 0,
                        "total_steps": 3, "downloaded_bytes": done, "total_bytes": 4 * 2**20,
                        "bytes_per_s": 2**20, "eta_s": (4 * 2**20 - done) / 2**20, "tokens_per_s": None})
    assert printer.bar.unit == "B" and printer.bar.n == 4 * 2**20
    printer.handle({"type": "phase", "phase": "loading_model"})
    printer.handle({"type": "progress", "step": 1, "total_steps": 3, "eta_s": 2.0, "tokens_per_s": 10.0})
    assert printer.bar.unit == "step" and printer.bar.n == 1
    printer.close()
    text = out.getvalue()
    assert "downloading model org/M-0.5B: 5 files, 4.0 MiB to fetch" in text
    assert "org/M-0.5B: 100%" in text and "4.00M/4.00M" in text and "ETA 0:00" in text
    assert "loading model and data" in text
