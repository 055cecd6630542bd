"""Downloads from a stand-in Hub on localhost: only the files a run needs, progress, kill and resume, gated
and unknown repos, not enough disk, datasets, the offline and unreachable cases."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grpo_studio.engine.hub import download as hd
from grpo_studio.engine.common.errors import EXIT_CODES, ConfigError
from grpo_studio.engine.hub.fetch import fetch
from test_events_schema import event_problems
from grpo_studio.engine.common.sources import cached_snapshot, local_model_folder, resolve_name, wanted_files
from stand_in_hub import hub_env, stand_in_hub  # noqa: F401 - the fixture

CLI = [sys.executable, "-P", "-m", "grpo_studio"]
MODEL = "org/Tiny-0.5B-Instruct"  # dotted, like nearly every real model


def model_files(weights: int = 300_000) -> dict[str, bytes]:
    return {"config.json": b'{"model_type": "llama"}', "tokenizer.json": b'{"version": "1.0"}', "tokenizer_config.json": b'{"eos_token": "x"}',
            "generation_config.json": b'{"eos_token_id": 2}', "model.safetensors": os.urandom(weights), "README.md": b"# card",
            # duplicates a run never reads
            "pytorch_model.bin": b"b" * 5000, "model.gguf": b"g" * 5000, "onnx/model.onnx": b"o" * 5000,
            "original/consolidated.00.pth": b"p" * 5000}


def sharded_files(first: int, second: int) -> dict[str, bytes]:
    files = model_files()
    files.pop("model.safetensors")
    files["model-00001-of-00002.safetensors"] = os.urandom(first)
    files["model-00002-of-00002.safetensors"] = os.urandom(second)
    files["model.safetensors.index.json"] = json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}).encode()
    return files


def test_download_fetches_only_training_files_with_progress_events(stand_in_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(hd, "PROGRESS_EVERY_S", 0.02)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)  # 10 MiB otherwise: one update per file
    stand_in_hub.add_repo(MODEL, model_files(1_000_000))
    stand_in_hub.bytes_per_s = 8_000_000
    events = []
    folder = fetch(resolve_name(MODEL), lambda type, **f: events.append({"type": type, "seq": len(events),
                                                                           "time": 0.0, **f}), total_steps=5)
    wanted = {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors"}
    assert {p.name for p in folder.iterdir()} == wanted
    assert set(stand_in_hub.gets[MODEL]) == wanted and all(n == 1 for n in stand_in_hub.gets[MODEL].values())
    phase, *progress = events
    total = sum(len(model_files(1_000_000)[name]) for name in wanted)
    assert phase["phase"] == "downloading" and phase["what"] == "model" and phase["total_bytes"] == total
    assert len(progress) >= 6 and all(e["type"] == "progress" and e["phase"] == "downloading" for e in progress)
    done = [e["downloaded_bytes"] for e in progress]
    assert done == sorted(done) and done[-1] == total and progress[-1]["eta_s"] == 0
    assert all(e["bytes_per_s"] > 0 and e["total_bytes"] == total for e in progress)
    assert all(event_problems(e) == [] for e in events)
    assert local_model_folder(MODEL) == folder  # complete: later starts use the cache without asking the Hub


def test_a_killed_download_resumes_without_fetching_finished_files_again(stand_in_hub, tmp_path):
    files = sharded_files(50_000, 3_000_000)
    stand_in_hub.add_repo(MODEL, files)
    stand_in_hub.bytes_per_s = 1_000_000  # the big shard takes ~3 s per connection
    env = {**os.environ, **hub_env(stand_in_hub, stand_in_hub.home)}
    proc = subprocess.Popen(CLI + ["download", MODEL, "--json"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        snapshots = stand_in_hub.home / "hub" / "models--org--Tiny-0.5B-Instruct" / "snapshots"
        deadline = time.monotonic() + 60
        small = [name for name in plan_names(files) if name != "model-00002-of-00002.safetensors"]
        while not all(list(snapshots.glob(f"*/{name}")) for name in small):
            assert time.monotonic() < deadline and proc.poll() is None, "the first shard never arrived"
            time.sleep(0.05)
        assert stand_in_hub.gets[MODEL]["model-00002-of-00002.safetensors"] == 1  # still on its way
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
    assert cached_snapshot(resolve_name(MODEL)) is None  # incomplete: never taken for a usable model
    stand_in_hub.bytes_per_s = None
    plan = hd.plan_download(resolve_name(MODEL))
    assert "model-00001-of-00002.safetensors" in plan.cached and "model-00002-of-00002.safetensors" not in plan.cached
    folder = hd.ensure_local(resolve_name(MODEL))
    assert (folder / "model-00002-of-00002.safetensors").read_bytes() == files["model-00002-of-00002.safetensors"]
    gets = stand_in_hub.gets[MODEL]
    assert gets["model-00001-of-00002.safetensors"] == 1 and gets["config.json"] == 1
    assert gets["model-00002-of-00002.safetensors"] == 2


def plan_names(files: dict) -> list[str]:
    return wanted_files(resolve_name(MODEL), list(files))


def test_gated_model_says_gated_links_its_page_and_where_the_token_goes(stand_in_hub):
    stand_in_hub.add_repo("org/Gated-1B", model_files(), gated=True, allowed_tokens={"hf_good"})
    with pytest.raises(hd.DownloadError) as info:
        hd.ensure_local(resolve_name("org/Gated-1B"))
    assert "gated" in info.value.message and f"{stand_in_hub.url}/org/Gated-1B" in info.value.message
    assert "Settings" in info.value.hint and "token" in info.value.hint
    assert cached_snapshot(resolve_name("org/Gated-1B")) is None
    # a token with access (huggingface_hub's own storage) opens it
    Path(stand_in_hub.home / "token").write_text("hf_good")
    assert (hd.ensure_local(resolve_name("org/Gated-1B")) / "config.json").is_file()


def test_unknown_repo_and_unreachable_hub_are_clear(stand_in_hub, monkeypatch):
    with pytest.raises(hd.DownloadError) as info:
        hd.ensure_local(resolve_name("org/No-Such-Model-1.5B"))
    assert "taken for a hub id" in info.value.message and "no such repository" in info.value.message
    nobody = socket.socket()
    nobody.bind(("127.0.0.1", 0))
    port = nobody.getsockname()[1]
    nobody.close()  # nothing listens there now
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", constants.ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}")
    with pytest.raises(hd.DownloadError) as info:
        hd.ensure_local(resolve_name("org/Also-Missing"))
    assert "cannot be reached and the model org/Also-Missing is not cached" in info.value.message
    assert "grpo-studio download" in info.value.hint


def test_offline_mode_uses_the_cache_only(stand_in_hub, monkeypatch):
    from huggingface_hub import constants

    stand_in_hub.add_repo(MODEL, model_files())
    hd.ensure_local(resolve_name(MODEL))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = dict(stand_in_hub.gets[MODEL])
    assert (hd.ensure_local(resolve_name(MODEL)) / "config.json").is_file()
    assert stand_in_hub.gets[MODEL] == before
    with pytest.raises(hd.DownloadError, match="HF_HUB_OFFLINE"):
        hd.ensure_local(resolve_name("org/Other"))


def test_not_enough_disk_stops_before_any_byte(stand_in_hub, monkeypatch):
    stand_in_hub.add_repo(MODEL, model_files(2_000_000))
    monkeypatch.setattr(hd, "free_bytes", lambda path: 1_000_000)
    with pytest.raises(hd.NotEnoughDisk) as info:
        hd.ensure_local(resolve_name(MODEL))
    error = info.value
    assert error.kind == "disk_full"
    assert "2000" in error.message.replace(" ", "") or "2.0 MB" in error.message
    assert "1000000 bytes" in error.message and "HF_HOME" in error.hint
    assert not stand_in_hub.gets[MODEL]
    repo = stand_in_hub.home / "hub" / "models--org--Tiny-0.5B-Instruct"
    assert not any(p.is_file() for p in repo.rglob("*")) if repo.exists() else True


def test_dataset_download_with_subset(stand_in_hub):
    rows = b'{"question": "1+1", "answer": "2"}\n'
    stand_in_hub.add_repo("someone/arith-v1.5", {"main/train.jsonl": rows, "other/train.jsonl": rows,
                                                  "README.md": b"# data", "script.py": b"x"}, repo_type="dataset")
    events = []
    folder = fetch(resolve_name("someone/arith-v1.5:main", "dataset"), lambda type, **f: events.append(f))
    assert (folder / "main" / "train.jsonl").read_bytes() == rows
    assert not (folder / "other").exists() and not (folder / "script.py").exists()
    assert events[0]["what"] == "dataset"
    from grpo_studio.engine.common.config import DatasetConfig
    from grpo_studio.engine.data.dataset import load_rows

    assert len(load_rows(DatasetConfig(path="someone/arith-v1.5:main"))) == 1


def test_cli_plan_and_json_lines(stand_in_hub):
    stand_in_hub.add_repo(MODEL, model_files())
    env = {**os.environ, **hub_env(stand_in_hub, stand_in_hub.home)}
    plan = subprocess.run(CLI + ["download", MODEL, "--plan", "--json"], env=env, capture_output=True, text=True,
                          timeout=60)
    answer = json.loads(plan.stdout.strip().splitlines()[-1])
    assert answer["type"] == "plan" and not answer["cached"] and answer["missing_bytes"] == answer["total_bytes"] > 0
    assert answer["free_bytes"] > 0 and "pytorch_model.bin" not in answer["files"]
    out = subprocess.run(CLI + ["download", MODEL, "--json"], env=env, capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 0 and lines[0]["phase"] == "downloading" and lines[-1]["type"] == "done"
    bad = subprocess.run(CLI + ["download", "org/missing"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == EXIT_CODES["download"] and "no such repository" in bad.stderr


def test_names_resolve_one_way():
    assert resolve_name("Qwen/Qwen2.5-0.5B-Instruct").kind == "hub"
    assert resolve_name("meta-llama/Llama-3.1-8B").repo_id == "meta-llama/Llama-3.1-8B"
    assert resolve_name("openai/gsm8k:main", "dataset").subset == "main"
    assert resolve_name("demo").kind == "demo"
    for name in ("./models/qwen", "no-slash-model", "a/b/c", "data/train.jsonl", "org/bad..name"):
        with pytest.raises(ConfigError, match="taken for a local path"):
            resolve_name(name)
