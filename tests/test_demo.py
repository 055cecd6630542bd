"""The embedded demo: shipped files, a tokenizer that keeps the answer tags, a warm-started model, and the
`grpo-studio train --demo` command end to end (including --resume)."""
import json
from pathlib import Path

import torch

from grpo_studio.engine.cli import main
from grpo_studio.engine.common.config import config_from_dict
from grpo_studio.engine.common.demo import demo_config, demo_model_dir, demo_task_path
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths

from script_module import load_script

ROOT = Path(__file__).resolve().parents[1]


def build_script():
    return load_script(ROOT / "scripts" / "build_demo_model.py")


def test_shipped_files_are_small_and_match_the_build_script():
    folder = demo_model_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2 * 2**20
    rows = [json.loads(line) for line in demo_task_path().read_text().splitlines()]
    assert rows == build_script().task_rows()
    assert all(int(r["answer"]) == sum(map(int, r["prompt"][:-1].split("+"))) for r in rows)


def test_answer_tags_are_ordinary_tokens():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(demo_model_dir()))
    ids = tok.encode("3+5=<answer>8</answer>", add_special_tokens=False)
    assert len(ids) == 7  # one token per character and per tag
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == "3+5=<answer>8</answer>"


def test_shipped_model_is_warmed_up_near_but_not_at_the_answer():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    module = build_script()
    tok = AutoTokenizer.from_pretrained(str(demo_model_dir()))
    model = AutoModelForCausalLM.from_pretrained(str(demo_model_dir()))
    torch.manual_seed(0)
    rates = module.check(model, tok, samples=2)
    assert rates["format"] > 0.7  # the format is learnt
    assert 0.05 < rates["correct"] < 0.45  # GRPO still has the sums to learn


def test_demo_config_is_valid():
    config = demo_config(steps=7)
    assert config.max_steps == 7 and config.grpo.num_generations == 8 and config.batch.prompts_per_step == 16
    assert config_from_dict(config.to_dict()) == config


def test_train_demo_command_and_resume(tmp_path, runs_dir):
    run = tmp_path / "run"
    assert main(["train", "--demo", "--steps", "3", "--run-dir", str(run), "--quiet"]) == 0
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(demo_model_dir())
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert main(["train", "--resume", str(run), "--steps", "5", "--quiet"]) == 0
    steps = [e["step"] for e in read_events(RunPaths(run).events) if e["type"] == "metrics"]
    assert steps == [1, 2, 3, 4, 5]


def test_train_command_errors_are_clear(tmp_path, runs_dir, capsys):
    assert main(["train"]) == 2
    assert "nothing to train" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
