"""Training by hub id: a dotted id from a populated cache, an uncached id downloaded from the stand-in Hub
first (with progress events), and a stop while downloading."""
import json

from grpo_studio.engine.train.control import Control
from grpo_studio.engine.common.demo import demo_model_dir
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.hub.download import ensure_local
from test_events_schema import event_problems
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths, read_status
from grpo_studio.engine.common.sources import resolve_name
from stand_in_hub import stand_in_hub  # noqa: F401 - the fixture
from test_checkpoint_resume import small_config

REPO = "org/Demo-0.1B-Instruct"


def serve_demo_model(hub) -> None:
    hub.add_repo(REPO, {p.name: p.read_bytes() for p in demo_model_dir().iterdir() if p.is_file()})


def train(model: str, run_dir, control=None) -> list[dict]:
    config = small_config(steps=2)
    config.model = model
    assert run_engine(config, run_dir, quiet=True, control=control) == 0
    return list(read_events(RunPaths(run_dir).events))


def test_dotted_hub_id_from_the_cache_trains_offline(stand_in_hub, monkeypatch, tmp_path):
    from huggingface_hub import constants

    serve_demo_model(stand_in_hub)
    ensure_local(resolve_name(REPO))
    stand_in_hub.stop()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    events = train(REPO, tmp_path / "run")
    assert not [e for e in events if e.get("phase") == "downloading"]
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "finished"
    adapter = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == REPO


def test_uncached_hub_id_downloads_with_progress_then_trains(stand_in_hub, tmp_path):
    serve_demo_model(stand_in_hub)
    events = train(REPO, tmp_path / "run")
    kinds = [(e["type"], e.get("phase")) for e in events]
    first_download = kinds.index(("phase", "downloading"))
    assert first_download < kinds.index(("progress", "downloading")) < kinds.index(("phase", "loading_model"))
    last = [e for e in events if e.get("phase") == "downloading" and e["type"] == "progress"][-1]
    assert last["downloaded_bytes"] == last["total_bytes"] > 0 and last["repo_id"] == REPO
    assert all(event_problems(e) == [] for e in events)
    assert [e["step"] for e in events if e["type"] == "metrics"] == [1, 2]
    assert events[-1]["reason"] == "finished"


def test_stop_while_downloading_ends_the_run_as_stopped(stand_in_hub, tmp_path):
    serve_demo_model(stand_in_hub)
    control = Control()
    control.handle("stop")  # already asked: the first bytes stop it
    events = train(REPO, tmp_path / "run", control=control)
    assert events[-1]["type"] == "done" and events[-1]["reason"] == "stopped"
    assert read_status(RunPaths(tmp_path / "run"))["state"] == "stopped"
    assert not [e for e in events if e["type"] == "error"]
