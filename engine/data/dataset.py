"""Datasets: find the rows, check them, and turn each into a tokenised prompt — before any model loads.

`load_rows` reads a local JSONL / JSON / CSV / Parquet file or folder through `datasets`, a hub id whose
files are already in the Hugging Face cache (never downloads), or `demo`. `load_examples` renders every
prompt the way TRL's GRPOTrainer does (a plain string as is; chat messages through the tokenizer's chat
template with the generation prompt) and applies `grpo.max_prompt_length`. `preview` is what the GUI's
dataset picker shows. Every failure is a DataError that says what to change. Torch-free.
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpo_studio.engine.common.config import DEMO, DatasetConfig, TrainConfig
from grpo_studio.engine.common.errors import DataError
from grpo_studio.engine.common.text import clip
from grpo_studio.engine.data.files import check_data_file

if TYPE_CHECKING:
    import datasets

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# File or folder names that say which split a data file belongs to (the Hub's own naming conventions).
SPLIT_WORDS = {"train": "train", "training": "train", "test": "test", "testing": "test", "eval": "test",
               "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation"}
_SPLIT_IN_NAME = re.compile(r"(?:^|[-_.])(" + "|".join(SPLIT_WORDS) + r")(?:[-_.]|$)")
SUGGESTIONS = {
    "prompt_column": ("prompt", "messages", "conversation"),
    "question_column": ("question", "problem", "query", "instruction", "input"),
    "answer_column": ("answer", "solution", "final_answer", "target", "output", "label"),
}


@dataclass
class Example:
    prompt: str | list[dict]  # as in the dataset (what reward functions get as `prompts`, like TRL)
    prompt_text: str  # the rendered text fed to the model
    prompt_ids: list[int]
    columns: dict[str, Any]  # every column of the row (plus `answer`), passed to reward functions as kwargs


@dataclass
class DataReport:
    source: str  # the files actually read
    num_rows: int
    num_examples: int
    columns: list[str]
    overlong: int = 0  # prompts longer than grpo.max_prompt_length
    overlong_action: str = "truncate"
    max_prompt_tokens: int = 0
    mean_prompt_tokens: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.num_examples} prompts from {self.source} (prompt tokens: mean "
                f"{self.mean_prompt_tokens:.0f}, max {self.max_prompt_tokens})")
        if self.overlong:
            done = "truncated from the left" if self.overlong_action == "truncate" else "dropped"
            noun = "prompt" if self.overlong == 1 else "prompts"
            verb = "was" if self.overlong == 1 else "were"
            text += f"; {self.overlong} {noun} longer than max_prompt_length {verb} {done}"
        return text


# ---------------------------------------------------------------------------------------------------------
# Finding and reading the rows


def load_rows(dataset: DatasetConfig) -> datasets.Dataset:
    """The rows of `dataset.split` as a `datasets.Dataset`; raises DataError for anything unreadable."""
    return _load(dataset)[0]


def _load(dataset: DatasetConfig) -> tuple[datasets.Dataset, str]:
    files, fmt, source = _resolve(dataset)
    for path in files:
        check_data_file(path, fmt)
    import datasets

    split = _base_split(dataset.split)
    try:  # the full split text goes to datasets, so slices like "train[:1000]" work as in TRL scripts
        rows = datasets.load_dataset(fmt, data_files={split: [str(p) for p in files]}, split=dataset.split)
    except Exception as exc:  # noqa: BLE001 - datasets/pyarrow raise many types; all mean "can't read"
        raise DataError(f"could not read {source}: {_short(exc)}",
                        "check that every file is a valid table with the same columns in each row") from exc
    if len(rows) == 0:
        raise DataError(f"the dataset {source} has no rows", "point dataset.path at a file with data")
    return rows, source


def _resolve(dataset: DatasetConfig) -> tuple[list[Path], str, str]:
    """(files, datasets builder name, human-readable source) for a path, a cached hub id or `demo`."""
    if dataset.path == DEMO:
        from grpo_studio.engine.common.demo import demo_task_path

        path = demo_task_path()
        if not path.is_file():
            raise DataError(f"the demo task is missing: {path}",
                            "reinstall grpo-studio, or rebuild it with scripts/build_demo_model.py")
        return [path], "json", str(path)
    path = Path(dataset.path).expanduser()
    subset = None
    if not path.exists():
        from grpo_studio.engine.common.sources import resolve_name

        source = resolve_name(dataset.path, "dataset")  # a hub id, else "not found (taken for a path)"
        subset = source.subset
        path = _cached_hub_dataset(source)
    if not path.exists():
        raise DataError(f"dataset not found: {dataset.path}",
                        "give a .jsonl/.json/.csv/.parquet file, a folder of them, a hub id "
                        "(owner/name) already in the Hugging Face cache, or 'demo'")
    if path.is_file():
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise DataError(f"{path.name}: unsupported file type '{path.suffix}'",
                            f"use one of {', '.join(FORMATS)}")
        return [path], fmt, str(path)
    files = _folder_files(path / subset if subset else path, _base_split(dataset.split))
    formats = {FORMATS[f.suffix.lower()] for f in files}
    if len(formats) > 1:
        raise DataError(f"{path} mixes file types ({', '.join(sorted(formats))})",
                        "keep one format per folder, or point dataset.path at one file")
    shown = str(files[0]) if len(files) == 1 else f"{path} ({len(files)} files)"
    return files, formats.pop(), shown


def _base_split(split: str) -> str:
    """'train' for 'train', 'train[:100]' or 'train[10%:]'."""
    return split.split("[", 1)[0].strip() or "train"


def _cached_hub_dataset(source) -> Path:
    """The local snapshot folder of a hub dataset, from the cache only (a run downloads it first: engine.hub.fetch)."""
    from grpo_studio.engine.common.sources import cached_snapshot

    folder = cached_snapshot(source)
    if folder is None:
        raise DataError(f"dataset '{source.repo_id}' is not a local path and not in the Hugging Face cache",
                        "a training run downloads it when it starts; to look at it now, download it with "
                        f"`grpo-studio download --dataset {source.repo_id}`, or give a local file")
    return folder


def _split_of(path: Path, root: Path) -> str | None:
    """The split a file's name or folder names it for (train-00000-of-00001.parquet, test/x.jsonl)."""
    for part in reversed(path.relative_to(root).with_suffix("").parts):
        match = _SPLIT_IN_NAME.search(part.lower())
        if match:
            return SPLIT_WORDS[match.group(1)]
    return None


def _folder_files(root: Path, split: str) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}", "check the path (and the :subset name)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise DataError(f"no {'/'.join(FORMATS)} files in {root}", "point dataset.path at a data file")
    splits = {f: _split_of(f, root) for f in files}
    wanted = SPLIT_WORDS.get(split.lower(), split.lower())
    chosen = [f for f in files if splits[f] == wanted]
    if not chosen:
        unnamed = [f for f in files if splits[f] is None]
        named = sorted({s for s in splits.values() if s})
        if not unnamed or (named and wanted != "train"):
            there = named + (["train (files named without a split)"] if unnamed else [])
            raise DataError(f"no '{split}' split in {root}; it has: {', '.join(there)}",
                            f"set dataset.split to one of {', '.join(named or ['train'])}")
        chosen = unnamed  # files named without a split are the training data
    # Hub repos keep subsets (configs) in sibling folders, e.g. main/ and socratic/: never mix them.
    subsets = sorted({"/".join(part for part in f.parent.relative_to(root).parts
                               if not _SPLIT_IN_NAME.search(part.lower())) or "." for f in chosen})
    if len(subsets) > 1:
        raise DataError(f"{root} holds several subsets: {', '.join(subsets)}",
                        f"point dataset.path at one of them (e.g. {root / subsets[0]}), or for a hub id "
                        f"write owner/name:{subsets[0]}")
    return chosen


# ---------------------------------------------------------------------------------------------------------
# Prompts


def load_examples(config: TrainConfig, tokenizer) -> tuple[list[Example], DataReport]:
    """Every usable row as an Example, rendered and tokenised, plus a report of what was done."""
    spec = config.dataset
    rows, source = _load(spec)
    columns = list(rows.column_names)
    _check_columns(config, columns)
    chat = bool(getattr(tokenizer, "chat_template", None))
    limit = config.grpo.max_prompt_length
    report = DataReport(source=source, num_rows=len(rows), num_examples=0, columns=columns,
                        overlong_action=spec.overlong_prompts)
    prompts, texts, keep = [], [], []
    for index, row in enumerate(rows.to_list()):
        prompt = build_prompt(config, row, index, chat=chat)
        if prompt is None:
            continue
        prompts.append(prompt)
        texts.append(render_prompt(prompt, tokenizer, index))
        keep.append(row)
    if not prompts:
        raise DataError(f"every prompt in {source} is empty",
                        f"check that dataset.{'question' if spec.question_column else 'prompt'}_column "
                        "names the column with the prompts")
    if len(prompts) < len(rows):
        report.warnings.append(f"{len(rows) - len(prompts)} rows with an empty prompt were skipped")
    all_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]  # templates add their own BOS (TRL)
    lengths = [len(ids) for ids in all_ids]
    examples = []
    for prompt, text, ids, row in zip(prompts, texts, all_ids, keep):
        if len(ids) > limit:
            report.overlong += 1
            if spec.overlong_prompts == "drop":
                continue
            ids = ids[-limit:]  # keep the end: it holds the question and the generation prompt
            text = tokenizer.decode(ids, skip_special_tokens=False)
        examples.append(Example(prompt=prompt, prompt_text=text, prompt_ids=list(ids),
                                columns=reward_columns(row, spec.answer_column)))
    if not examples:
        raise DataError(f"all {report.overlong} prompts are longer than grpo.max_prompt_length ({limit} tokens)",
                        f"raise grpo.max_prompt_length (the longest prompt has {max(lengths)} tokens), "
                        "or set dataset.overlong_prompts: truncate")
    if report.overlong:
        report.warnings.append(report.summary().rsplit("; ", 1)[1])
    report.warnings += _missing_answers(config, [e.columns for e in examples])
    report.num_examples = len(examples)
    report.max_prompt_tokens = max(lengths)
    report.mean_prompt_tokens = statistics.fmean(lengths)
    return examples, report


ANSWER_REWARDS = ("math_correct",)  # built-ins that score against the answer column


def _missing_answers(config: TrainConfig, rows: list[dict]) -> list[str]:
    """A warning with the count of rows whose answer is empty; a DataError when all are and a reward
    scores against them (it would give every completion the same score: nothing to learn)."""
    column = config.dataset.answer_column
    if not column or not rows or not any(column in row for row in rows):
        return []
    empty = sum(1 for row in rows if row.get(column) is None or str(row.get(column)).strip() == "")
    if not empty:
        return []
    needing = [r.name for r in config.rewards if r.name in ANSWER_REWARDS]
    if empty == len(rows) and needing:
        raise DataError(f"the answer column '{column}' is empty in all {len(rows)} rows, but "
                        f"{', '.join(needing)} scores completions against it",
                        "set dataset.answer_column to the column with the reference answers, or use rewards "
                        "that need no answer")
    effect = f"; {', '.join(needing)} does not score those rows" if needing else ""
    return [f"{empty} of {len(rows)} rows have no answer in column '{column}'{effect}"]


def _check_columns(config: TrainConfig, columns: list[str]) -> None:
    spec = config.dataset
    needed = {"dataset.question_column": spec.question_column} if spec.question_column else {
        "dataset.prompt_column": spec.prompt_column}
    if spec.system_prompt_column:
        needed["dataset.system_prompt_column"] = spec.system_prompt_column
    if spec.answer_column and any(r.name == "math_correct" for r in config.rewards):
        needed["dataset.answer_column"] = spec.answer_column
    for field_name, column in needed.items():
        if column not in columns:
            kind = field_name.split(".")[1]
            guess = suggest_columns(columns).get(kind)
            hint = f"set {field_name} to one of the columns there are"
            if guess:
                hint += f" (probably '{guess}')"
            raise DataError(f"column '{column}' ({field_name}) is not in the dataset; its columns are: "
                            f"{', '.join(columns)}", hint)


def build_prompt(config: TrainConfig, row: dict, index: int = 0, *, chat: bool = True
                 ) -> str | list[dict] | None:
    """The prompt of one row as TRL sees it: a string, or a list of chat messages; None when empty.

    `chat` says whether the tokenizer has a chat template. A prompt column is used as it is (a system
    prompt, when configured, goes in front); a question column becomes system + user messages. Without a
    template the result is plain text: the system prompt, a newline, the question."""
    spec = config.dataset
    system = (row.get(spec.system_prompt_column) if spec.system_prompt_column else None) or config.system_prompt
    value = row.get(spec.question_column or spec.prompt_column)
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        return None
    if isinstance(value, list):
        _check_messages(value, index)
        if not chat:
            raise DataError(f"row {index}: the prompt is a list of chat messages, but the model's tokenizer "
                            "has no chat template", "use a chat (instruct) model, or a plain-text prompt "
                            "column (or a question column, which works without a template)")
        if system and value[0].get("role") != "system":
            value = [{"role": "system", "content": system}] + value
        return value
    value = value if isinstance(value, str) else str(value)
    if not chat:
        return f"{system}\n{value}" if system else value
    if spec.question_column or system:
        return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": value}]
    return value


def _check_messages(messages: list, index: int) -> None:
    for message in messages:
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and "content" in message):
            raise DataError(f"row {index}: the prompt is a list but not of chat messages: {clip(repr(message), 80)}",
                            'each message must look like {"role": "user", "content": "..."}')


def render_prompt(prompt: str | list[dict], tokenizer, index: int = 0) -> str:
    """The text the model sees: chat messages through the chat template (with the generation prompt)."""
    if isinstance(prompt, str):
        return prompt
    try:
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - a jinja template can raise anything
        raise DataError(f"row {index}: the chat template failed on this prompt: {_short(exc)}",
                        "check the roles in the messages (some templates want user/assistant "
                        "alternating)") from exc


def reward_columns(row: dict, answer_column: str | None) -> dict[str, Any]:
    """The row's columns for reward kwargs; the answer also under `answer`, the name math_correct reads."""
    columns = dict(row)
    if answer_column and answer_column in row and "answer" not in row:
        columns["answer"] = row[answer_column]
    return columns


# ---------------------------------------------------------------------------------------------------------
# Preview for the GUI


def preview(dataset: DatasetConfig, n: int = 5) -> dict:
    """{columns, rows (first n, JSON-able), num_rows, suggested: {prompt_column, question_column,
    answer_column}} for the dataset picker."""
    rows = load_rows(dataset)
    columns = list(rows.column_names)
    first = rows.select(range(min(n, len(rows)))).to_list()
    return {"columns": columns, "rows": [_jsonable(r) for r in first], "num_rows": len(rows),
            "suggested": suggest_columns(columns)}


def suggest_columns(columns: list[str]) -> dict[str, str | None]:
    lower = {c.lower(): c for c in columns}
    return {kind: next((lower[name] for name in names if name in lower), None)
            for kind, names in SUGGESTIONS.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # dates, bytes, images: shown as text in a preview


def _short(exc: BaseException) -> str:
    """The root cause in one line: datasets wraps parser errors in a generic 'error while generating'."""
    for _ in range(20):  # bounded: a cause chain is short, never worth a loop on a cycle
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return clip(f"{type(exc).__name__}: {lines[-1] if lines else ''}", 300)
