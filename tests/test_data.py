"""Datasets: every way of giving data, every error a user can make, and prompt rendering."""
from __future__ import annotations

import json

import pytest

from grpo_studio.engine.cli import main as cli
from grpo_studio.engine.common.config import DatasetConfig, GRPOSettings, RewardSpec, TrainConfig
from grpo_studio.engine.data.dataset import load_examples, load_rows, preview
from grpo_studio.engine.common.errors import DataError

ROWS = [{"prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(6)]


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory):
    from tiny_models import build_tokenizer

    return build_tokenizer(tmp_path_factory.mktemp("tok-chat"))


@pytest.fixture(scope="module")
def plain_tokenizer(tmp_path_factory):
    from tiny_models import build_tokenizer

    tokenizer = build_tokenizer(tmp_path_factory.mktemp("tok-plain"))
    tokenizer.chat_template = None  # a base model's tokenizer
    return tokenizer


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def config(path, **dataset) -> TrainConfig:
    return TrainConfig(dataset=DatasetConfig(path=str(path), **dataset),
                       rewards=[RewardSpec("math_correct")], grpo=GRPOSettings(max_prompt_length=64))


# ---------------------------------------------------------------------------------------------------------
# Reading files


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_each_file_format_reads_the_same_rows(tmp_path, suffix):
    import datasets

    path = tmp_path / f"data{suffix}"
    if suffix == ".jsonl":
        write_jsonl(path, ROWS)
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS), encoding="utf-8")
    else:
        frame = datasets.Dataset.from_list(ROWS)
        frame.to_csv(str(path)) if suffix == ".csv" else frame.to_parquet(str(path))
    rows = load_rows(DatasetConfig(path=str(path)))
    assert rows.column_names == ["prompt", "answer"]
    assert [str(a) for a in rows["answer"]] == [r["answer"] for r in ROWS]


def test_folder_picks_the_split_by_file_name(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS[:4])
    write_jsonl(tmp_path / "test.jsonl", ROWS[4:])
    assert len(load_rows(DatasetConfig(path=str(tmp_path)))) == 4
    assert len(load_rows(DatasetConfig(path=str(tmp_path), split="test"))) == 2
    assert len(load_rows(DatasetConfig(path=str(tmp_path), split="train[:3]"))) == 3  # slices as in TRL scripts
    with pytest.raises(DataError, match=r"no 'validation' split .* it has: test, train"):
        load_rows(DatasetConfig(path=str(tmp_path), split="validation"))


def test_folder_with_several_subsets_asks_for_one(tmp_path):
    for subset in ("main", "socratic"):
        (tmp_path / subset).mkdir()
        write_jsonl(tmp_path / subset / "train-00000-of-00001.jsonl", ROWS)
    with pytest.raises(DataError, match="several subsets: main, socratic") as info:
        load_rows(DatasetConfig(path=str(tmp_path)))
    assert "main" in info.value.hint
    assert len(load_rows(DatasetConfig(path=str(tmp_path / "main")))) == len(ROWS)


def test_cached_hub_dataset_is_read_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    repo = tmp_path / "datasets--someone--arith"
    snapshot = repo / "snapshots" / "0123abcd"
    for subset, rows in (("main", ROWS), ("other", ROWS[:2])):
        (snapshot / subset).mkdir(parents=True)
        write_jsonl(snapshot / subset / "train-00000-of-00001.jsonl", rows)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert len(load_rows(DatasetConfig(path="someone/arith:other"))) == 2
    with pytest.raises(DataError, match="several subsets"):
        load_rows(DatasetConfig(path="someone/arith"))
    with pytest.raises(DataError, match="not in the Hugging Face cache") as info:
        load_rows(DatasetConfig(path="someone/missing"))
    assert "grpo-studio download --dataset someone/missing" in info.value.hint


def test_unreadable_csv_gives_the_parser_reason(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('prompt,answer\n"a,1\nb,2\n')
    with pytest.raises(DataError, match="could not read .*data.csv: ParserError: .*EOF inside string"):
        load_rows(DatasetConfig(path=str(path)))


def test_folder_mixing_file_types(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "b.csv").write_text("prompt,answer\nx,1\n")
    with pytest.raises(DataError, match="mixes file types \\(csv, json\\)"):
        load_rows(DatasetConfig(path=str(tmp_path)))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="dataset not found") as info:
        load_rows(DatasetConfig(path=str(tmp_path / "nope.jsonl")))
    assert info.value.hint


def test_unsupported_file_type(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match="unsupported file type"):
        load_rows(DatasetConfig(path=str(tmp_path / "data.txt")))


@pytest.mark.parametrize("content", ["", "\n\n", "prompt,answer\n"])
def test_empty_dataset(tmp_path, content):
    path = tmp_path / ("data.csv" if "," in content else "data.jsonl")
    path.write_text(content)
    with pytest.raises(DataError, match="no rows") as info:  # never datasets' "StopIteration"
        load_rows(DatasetConfig(path=str(path)))
    assert info.value.hint


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"prompt": "a", "answer": "1"}\n\n{"prompt": "b", "answer": 2\n{"prompt": "c"}\n')
    with pytest.raises(DataError) as info:
        load_rows(DatasetConfig(path=str(path)))
    assert "data.jsonl, line 3: malformed JSON" in info.value.message
    assert "line" in info.value.hint


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"prompt": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2: a JSON list, not an object"):
        load_rows(DatasetConfig(path=str(path)))


def test_malformed_json_document_names_the_line(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n {"prompt": "a", "answer": "1"},\n {"prompt": "b" "answer": "2"}\n]\n')
    with pytest.raises(DataError, match=r"data.json, line 3: malformed JSON"):
        load_rows(DatasetConfig(path=str(path)))


def test_json_lines_in_a_dot_json_file_are_accepted(tmp_path):
    path = tmp_path / "data.json"
    write_jsonl(path, ROWS)
    assert len(load_rows(DatasetConfig(path=str(path)))) == len(ROWS)


def test_demo_task_has_prompt_and_answer():
    rows = load_rows(DatasetConfig(path="demo"))
    assert {"prompt", "answer"} <= set(rows.column_names) and len(rows) > 0


# ---------------------------------------------------------------------------------------------------------
# Columns and prompts


def test_missing_column_lists_the_columns(tmp_path, chat_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "solution": "2"}])
    with pytest.raises(DataError) as info:
        load_examples(config(path), chat_tokenizer)
    assert "column 'prompt'" in info.value.message and "problem, solution" in info.value.message
    with pytest.raises(DataError, match="column 'answer'") as info:
        load_examples(config(path, question_column="problem"), chat_tokenizer)
    assert "solution" in info.value.hint  # the guess


def test_answer_column_only_required_by_math_correct(tmp_path, plain_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "hi"}])
    cfg = config(path)
    cfg.rewards = [RewardSpec("format_soft")]
    examples, _ = load_examples(cfg, plain_tokenizer)
    assert examples[0].columns == {"prompt": "hi"}


def test_plain_prompts_are_used_as_is(tmp_path, chat_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    examples, report = load_examples(config(path), chat_tokenizer)
    assert report.num_rows == report.num_examples == len(ROWS) and report.overlong == 0
    first = examples[0]
    assert first.prompt == first.prompt_text == ROWS[0]["prompt"]
    assert first.prompt_ids == chat_tokenizer(ROWS[0]["prompt"], add_special_tokens=False)["input_ids"]
    assert first.columns == ROWS[0]
    assert report.max_prompt_tokens == max(len(e.prompt_ids) for e in examples)


def test_chat_message_prompts_go_through_the_template(tmp_path, chat_tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": messages, "answer": "5"}])
    [example], _ = load_examples(config(path), chat_tokenizer)
    assert example.prompt == messages
    assert example.prompt_text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?"
                                   "<|im_end|>\n<|im_start|>assistant\n")
    assert chat_tokenizer.decode(example.prompt_ids) == example.prompt_text


def test_question_column_with_system_prompt(tmp_path, chat_tokenizer, plain_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "What is 2 + 3?", "solution": "5"}])
    cfg = config(path, question_column="question", answer_column="solution")
    cfg.system_prompt = "Think step by step."
    [example], _ = load_examples(cfg, chat_tokenizer)
    assert example.prompt == [{"role": "system", "content": "Think step by step."},
                              {"role": "user", "content": "What is 2 + 3?"}]
    assert example.prompt_text.endswith("<|im_start|>assistant\n")
    assert example.columns["answer"] == "5" and example.columns["solution"] == "5"  # renamed for math_correct
    [plain], _ = load_examples(cfg, plain_tokenizer)  # no template: the text as is
    assert plain.prompt == plain.prompt_text == "Think step by step.\nWhat is 2 + 3?"


def test_system_prompt_column_per_row(tmp_path, chat_tokenizer):
    rows = [{"q": "a?", "sys": "One.", "answer": "1"}, {"q": "b?", "sys": "Two.", "answer": "2"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    examples, _ = load_examples(config(path, question_column="q", system_prompt_column="sys"), chat_tokenizer)
    assert [e.prompt[0]["content"] for e in examples] == ["One.", "Two."]


def test_chat_messages_without_a_template_are_an_error(tmp_path, plain_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": [{"role": "user", "content": "hi"}], "answer": "1"}])
    with pytest.raises(DataError, match="no chat template"):
        load_examples(config(path), plain_tokenizer)


def test_malformed_messages_are_an_error(tmp_path, chat_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": [{"text": "hi"}], "answer": "1"}])
    with pytest.raises(DataError, match="row 0: .* not of chat messages"):
        load_examples(config(path), chat_tokenizer)


def test_empty_prompts_are_skipped_with_a_warning(tmp_path, chat_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "", "answer": "1"}] + ROWS[:2])
    examples, report = load_examples(config(path), chat_tokenizer)
    assert len(examples) == 2 and "1 rows with an empty prompt" in report.warnings[0]
    write_jsonl(path, [{"prompt": " ", "answer": "1"}])
    with pytest.raises(DataError, match="every prompt .* is empty"):
        load_examples(config(path), chat_tokenizer)


def test_overlong_prompts_are_truncated_from_the_left(tmp_path, chat_tokenizer):
    long = "The quick brown fox jumps over the lazy dog. " * 20 + "What is 2 + 3?"
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": long, "answer": "5"}] + ROWS[:2])
    cfg = config(path)
    cfg.grpo.max_prompt_length = 16
    examples, report = load_examples(cfg, chat_tokenizer)
    full = chat_tokenizer(long, add_special_tokens=False)["input_ids"]
    assert report.overlong == 1 and len(examples) == 3 and report.max_prompt_tokens == len(full)
    assert examples[0].prompt_ids == full[-16:]
    assert examples[0].prompt_text.endswith("What is 2 + 3?") and examples[0].prompt == long
    assert "1 prompt longer than max_prompt_length was truncated" in report.summary()  # issue 27, finding 14


def test_overlong_prompts_dropped_and_all_dropped_is_an_error(tmp_path, chat_tokenizer):
    long = "The quick brown fox jumps over the lazy dog. " * 20
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": long, "answer": "5"}] + ROWS[:2])
    cfg = config(path, overlong_prompts="drop")
    cfg.grpo.max_prompt_length = 16
    examples, report = load_examples(cfg, chat_tokenizer)
    assert report.overlong == 1 and [e.prompt for e in examples] == [r["prompt"] for r in ROWS[:2]]
    cfg.grpo.max_prompt_length = 2
    with pytest.raises(DataError, match="all 3 prompts are longer than grpo.max_prompt_length") as info:
        load_examples(cfg, chat_tokenizer)
    assert "truncate" in info.value.hint


# ---------------------------------------------------------------------------------------------------------
# Preview (API and CLI)


def test_preview_guesses_the_columns(tmp_path):
    rows = [{"id": i, "problem": f"p{i}", "final_answer": i, "meta": {"tags": ["x"]}} for i in range(8)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    result = preview(DatasetConfig(path=str(path)), n=3)
    assert result["columns"] == ["id", "problem", "final_answer", "meta"] and result["num_rows"] == 8
    assert result["rows"] == rows[:3]
    assert result["suggested"] == {"prompt_column": None, "question_column": "problem",
                                   "answer_column": "final_answer"}
    json.dumps(result)


def test_preview_cli_json_and_errors(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    assert cli(["preview", "--dataset", str(path), "--rows", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == ROWS[:2] and result["suggested"]["prompt_column"] == "prompt"
    assert cli(["preview", "--dataset", str(path), "--rows", "2"]) == 0
    assert "What is 1 + 1?" in capsys.readouterr().out
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    assert cli(["preview", "--dataset", str(tmp_path / "bad.jsonl"), "--json"]) == 3
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["kind"] == "data" and "line 1" in error["message"] and error["hint"]
    assert cli(["preview", "--dataset", str(tmp_path / "missing.jsonl")]) == 3
    assert "dataset not found" in capsys.readouterr().err
