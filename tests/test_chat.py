"""`grpo-studio chat` and `grpo-studio export` as the app drives them: JSON lines, adapter on vs off."""
import json
import os
import time
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from grpo_studio.engine.cli import main  # noqa: E402
from grpo_studio.engine.common.demo import demo_model_dir  # noqa: E402
from test_export_gguf import make_adapter  # noqa: E402


def make_run(tmp_path: Path, arch: str = "llama", **config) -> Path:
    """A finished run folder: config.yaml naming the base model and rewards, and RUN/adapter."""
    base_dir, adapter_dir, _ = make_adapter(tmp_path, arch)
    run = tmp_path / "runs" / "2026-01-01_120000_tiny"
    run.mkdir(parents=True)
    adapter_dir.rename(run / "adapter")
    settings = {"model": str(base_dir), "dtype": "float32", "device": "cpu",
                "rewards": [{"name": "math_correct", "weight": 1.0}, {"name": "format_soft", "weight": 0.5}],
                **config}
    (run / "config.yaml").write_text(yaml.safe_dump(settings))
    return run


def cli_json(capsys, *argv) -> tuple[int, list[dict]]:
    code = main([*map(str, argv), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, lines


def answers(lines: list[dict]) -> dict[str, dict]:
    return {m["side"]: m for m in lines if m["type"] == "answer"}


def test_chat_streams_both_sides_and_scores_them(tmp_path, capsys):
    run = make_run(tmp_path, system_prompt="Answer in <answer></answer>.",
                   dataset={"question_column": "question"})
    code, lines = cli_json(capsys, "chat", run, "--prompt", "What is 2 + 3?", "--max-new-tokens", 12)
    assert code == 0 and lines[-1] == {"type": "done"}
    got = answers(lines)
    assert set(got) == {"base", "tuned"}
    for side, answer in got.items():  # the streamed pieces are the answer
        assert "".join(m["text"] for m in lines if m["type"] == "token" and m["side"] == side) == answer["text"]
        assert set(answer["rewards"]) == {"math_correct", "format_soft"}
        assert answer["rewards"]["math_correct"] is None  # no --answer: cannot be scored
        assert answer["reward"] == pytest.approx(0.5 * answer["rewards"]["format_soft"])
    assert got["base"]["text"] != got["tuned"]["text"], "the adapter must change the answer"
    notes = [m["message"] for m in lines if m["type"] == "log" and "not scored" in m["message"]]
    assert notes == ["math_correct: not scored: no reference answer was given (--answer, or Answer in the app)"]
    # greedy: the same again; with --answer math_correct scores
    code, again = cli_json(capsys, "chat", run, "--prompt", "What is 2 + 3?", "--max-new-tokens", 12,
                           "--answer", "5")
    assert {s: a["text"] for s, a in answers(again).items()} == {s: a["text"] for s, a in got.items()}
    assert all(a["rewards"]["math_correct"] in (0.0, 1.0) for a in answers(again).values())


def test_chat_on_the_demo_model_plain_prompt(tmp_path, capsys):
    """The demo model has no chat template: the prompt goes in as is; adapter on vs off differs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(demo_model_dir()))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(3)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    peft_model.peft_config["default"].base_model_name_or_path = str(demo_model_dir())
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    code, lines = cli_json(capsys, "chat", tmp_path / "adapter", "--prompt", "3+5=", "--max-new-tokens", 6)
    assert code == 0
    got = answers(lines)
    assert got["base"]["text"] != got["tuned"]["text"]
    assert got["base"]["rewards"] == {} and got["base"]["reward"] is None  # no run config: no reward functions


@pytest.mark.slow  # trains the demo for ~10 s
def test_chat_after_demo_training_tuned_answers_differ_and_score_higher(tmp_path, capsys):
    from grpo_studio.engine.common.demo import demo_config
    from grpo_studio.engine.run.runner import run_engine

    run = tmp_path / "run"
    assert run_engine(demo_config(steps=120), run, quiet=True) == 0
    capsys.readouterr()
    prompts = [(f"{a}+{b}=", a + b) for a, b in ((2, 9), (7, 8), (9, 9), (6, 5), (8, 4), (3, 9), (5, 7), (9, 6))]
    differ, scores = 0, {"base": 0.0, "tuned": 0.0}
    for prompt, total in prompts:
        code, lines = cli_json(capsys, "chat", run, "--prompt", prompt, "--answer", total)
        assert code == 0
        got = answers(lines)
        differ += got["base"]["text"] != got["tuned"]["text"]
        for side in scores:
            scores[side] += got[side]["rewards"]["math_correct"]
    assert differ >= 1, "after training, the adapter must change some answers"
    assert scores["tuned"] > scores["base"], scores


def test_chat_error_is_a_json_line(tmp_path, capsys):
    code, lines = cli_json(capsys, "chat", tmp_path, "--prompt", "hi")
    assert code == 8 and lines[-1]["type"] == "error" and lines[-1]["kind"] == "export" and lines[-1]["hint"]


def test_export_cli_contract(tmp_path, capsys):
    run = make_run(tmp_path, "qwen2", system_prompt="Be brief.", dataset={"question_column": "question"})
    base_gguf = tmp_path / "qwen-f16.gguf"
    base_gguf.write_bytes(b"GGUF")
    code, lines = cli_json(capsys, "export", run, "--ollama", base_gguf)
    assert code == 0 and all(m["type"] == "log" for m in lines[:-1]) and lines[:-1]
    result = lines[-1]
    assert result["type"] == "result"
    gguf_file, modelfile = result["files"]
    assert gguf_file["kind"] == "gguf" and gguf_file["path"] == str((run / "exports" / "adapter-f16.gguf").resolve())
    assert gguf_file["bytes"] == Path(gguf_file["path"]).stat().st_size
    assert modelfile["kind"] == "modelfile" and Path(modelfile["path"]) == (run / "exports" / "Modelfile").resolve()
    text = Path(modelfile["path"]).read_text()
    assert f"FROM {base_gguf.resolve()}" in text and 'SYSTEM """Be brief."""' in text and "<|im_start|>" in text
    assert result["ollama_command"] == f"ollama create 2026-01-01_120000_tiny -f {modelfile['path']}"


def test_export_cli_merged_only_and_errors(tmp_path, capsys):
    run = make_run(tmp_path, "llama")
    code, lines = cli_json(capsys, "export", run, "--merged", tmp_path / "merged", "--outtype", "q8_0")
    assert code == 0
    assert [f["kind"] for f in lines[-1]["files"]] == ["merged"] and lines[-1]["ollama_command"] is None
    code, lines = cli_json(capsys, "export", run, "--ollama", tmp_path / "missing-base.gguf")
    assert code == 8 and lines[-1]["type"] == "error"
    assert "convert_hf_to_gguf.py" in lines[-1]["hint"]
    assert not (run / "exports").exists()  # refused before writing anything


def test_chat_serve_loads_once_for_two_prompts_and_answers_as_one_shot(tmp_path, capsys, monkeypatch):
    """The Try page's engine: two generates over stdin, one model load, the same answers as `chat`."""
    import io

    from grpo_studio.engine.chat import answers as chat_module

    run = make_run(tmp_path, dataset={"question_column": "question"})
    loads = []
    real_load = chat_module.load_model
    monkeypatch.setattr(chat_module, "load_model", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    requests = [{"cmd": "generate", "prompt": "What is 2 + 3?", "max_new_tokens": 12, "answer": "5"},
                {"cmd": "generate", "prompt": "", "max_new_tokens": 12},  # unreadable: an error, then on
                {"prompt": "What is 4 + 4?", "max_new_tokens": 12, "temperature": 0}]
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(r) + "\n" for r in requests)))
    code, lines = cli_json(capsys, "chat", run, "--serve")
    assert code == 0 and len(loads) == 1
    assert [m["type"] for m in lines if m["type"] in ("ready", "done", "error")] == \
        ["ready", "done", "error", "done", "done"]
    first, rest = lines[:lines.index({"type": "done"}) + 1], lines[lines.index({"type": "done"}) + 1:]
    second = rest[rest.index({"type": "done"}) + 1:]
    _, alone = cli_json(capsys, "chat", run, "--prompt", "What is 4 + 4?", "--max-new-tokens", 12)
    assert {s: a["text"] for s, a in answers(second).items()} == {s: a["text"] for s, a in answers(alone).items()}
    assert answers(first)["tuned"]["rewards"]["math_correct"] in (0.0, 1.0)  # the answer was used


def test_chat_serve_stop_reaches_the_answer_in_progress(tmp_path):
    """A stop read while a request is being answered marks that request (not the next one) as stopped."""
    from grpo_studio.engine.chat.serve import RequestInbox

    reader, writer = os.pipe()
    inbox = RequestInbox(open(reader, encoding="utf-8"))
    with open(writer, "w", encoding="utf-8") as stream:
        stream.write(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"cmd": "stop"}) + "\n")
        stream.flush()
        items = iter(inbox)
        number, _ = next(items)
        deadline = time.monotonic() + 5
        while not inbox.stopped(number) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert inbox.stopped(number)
        stream.write(json.dumps({"prompt": "b"}) + "\n")
    number, request = next(items)
    assert request["prompt"] == "b" and not inbox.stopped(number)
    assert next(items, None) is None  # the end of stdin ends the loop


def test_a_stopped_answer_ends_after_the_side_in_progress(tmp_path):
    from grpo_studio.engine.chat.answers import ChatSession

    run = make_run(tmp_path)
    lines: list[dict] = []
    session = ChatSession(run, emit=lines.append)
    session.answer("What is 2 + 3?", emit=lines.append, max_new_tokens=12, should_stop=lambda: True)
    assert lines[-1] == {"type": "done", "stopped": True}
    assert list(answers(lines)) == ["base"]
    assert sum(m["type"] == "token" for m in lines) <= 1  # cut after the first token
