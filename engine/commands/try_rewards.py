"""`grpo-studio try-rewards CONFIG.yaml`: run the configured reward functions on a few rows, no model.

For each of the first rows it scores two made-up completions: the dataset's own answer in the
`<think>…</think><answer>…</answer>` shape (every reward should like it) and a wrong, untagged one (every
reward should not). A broken reward function shows up here, before hours of training. The GUI's
"try rewards on 5 rows" button runs it with --json. Torch-free: the tokenizer (for completion lengths)
is read with the `tokenizers` library only.
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

from grpo_studio.engine.common.text import clip

NAME = "try-rewards"
HELP = "score the dataset's answer and a wrong answer with the configured reward functions (no model)"
ORDER = 35
# The <think> text of a made-up completion when the reference answer has no worked steps of its own.
STAND_IN_REASONING = "Working it out step by step."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="run config (dataset + rewards)")
    parser.add_argument("--rows", type=int, default=5, metavar="N", help="dataset rows to try (default: 5)")
    parser.add_argument("--json", action="store_true", help="print JSON (what the GUI reads)")


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.commands.preview import _quiet_datasets, error_json
    from grpo_studio.engine.common.errors import EXIT_CODES, StudioError

    _quiet_datasets()
    try:
        result = try_rewards(args.config, rows=max(1, args.rows))
    except StudioError as error:
        if not args.json:
            raise
        print(json.dumps(error_json(error)))
        return error.exit_code
    print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else format_report(result))
    return EXIT_CODES["reward"] if result["errors"] else 0


def try_rewards(config_path: str | Path, rows: int = 5) -> dict:
    """{rows: [{row, kind, prompt, completion, rewards: {fn: value}, total}], functions: [{name, weight,
    description}], errors: [{function, kind, message, hint}], error (the first, when any), notes}."""
    from grpo_studio.engine.common.config import load_config
    from grpo_studio.engine.common.errors import RewardError
    from grpo_studio.engine.data.dataset import build_prompt, load_rows, reward_columns
    from grpo_studio.engine.rewards.scoring import load_reward_functions, score_completions, weighted_sum

    config = load_config(config_path)
    functions = load_reward_functions(config.rewards, max_completion_length=config.grpo.max_completion_length)
    encode, chat, notes = light_tokenizer(config.model)
    data = load_rows(config.dataset)
    answer_column = config.dataset.answer_column
    prompts, completions, kinds, columns, indices = [], [], [], [], []
    for index, row in enumerate(data.select(range(min(rows, len(data)))).to_list()):
        prompt = build_prompt(config, row, index, chat=chat)
        reference = row.get(answer_column) if answer_column else None
        for kind, completion in made_up_completions(reference):
            prompts.append(prompt if prompt is not None else "")
            completions.append(completion)
            kinds.append(kind)
            columns.append(reward_columns(row, answer_column))
            indices.append(index)
    ids = [encode(c) for c in completions]
    per_function, errors = {}, []
    for rf in functions:  # one at a time, so one broken function does not hide the others' scores
        try:
            per_function[rf.name] = score_completions([rf], prompts, completions, ids, columns).per_function[rf.name]
        except RewardError as error:
            errors.append({"function": rf.name, "kind": error.kind, "message": error.message, "hint": error.hint})
            per_function[rf.name] = [None] * len(completions)
    out_rows = []
    for i, completion in enumerate(completions):
        rewards = {name: values[i] for name, values in per_function.items()}
        total = weighted_sum([rewards[rf.name] for rf in functions], [rf.weight for rf in functions])
        out_rows.append({"row": indices[i], "kind": kinds[i], "prompt": prompts[i], "completion": completion,
                         "rewards": rewards, "total": total})
    result = {"rows": out_rows, "functions": [{"name": rf.name, "weight": rf.weight, "description": rf.description}
                                              for rf in functions], "errors": errors, "notes": notes}
    if errors:
        result["error"] = {k: errors[0][k] for k in ("kind", "message", "hint")}
    return result


def made_up_completions(reference) -> list[tuple[str, str]]:
    """(kind, completion): the reference answer, well formatted, and a wrong answer without tags."""
    from grpo_studio.engine.common.reward_functions import extract_answer

    if reference is None or str(reference).strip() == "":
        return [("formatted", f"<think>{STAND_IN_REASONING}</think><answer>?</answer>"),
                ("unformatted", "I am not sure.")]
    text = str(reference).strip()
    final, reasoning = text, STAND_IN_REASONING
    if "####" in text or "\\boxed" in text:  # a worked solution: its steps go in <think>, its result after
        final = extract_answer(text) or text
        reasoning = text.rsplit("####", 1)[0].strip() if "####" in text else text
    return [("reference", f"<think>{reasoning}</think><answer>{final}</answer>"),
            ("wrong", f"I am not sure, maybe {wrong_answer(final)}.")]


def wrong_answer(answer: str) -> str:
    try:
        value = float(answer.replace(",", ""))
    except ValueError:
        return "42" if answer.strip() != "42" else "41"
    if math.isfinite(value) and value.is_integer():
        return str(int(value) + 1)
    return f"{value + 1:g}"


def light_tokenizer(model: str) -> tuple[Callable[[str], list[int]], bool, list[str]]:
    """(encode, has a chat template, notes) from the model's tokenizer files, without transformers/torch."""
    from grpo_studio.engine.common.config import DEMO

    folder: Path | None = None
    if model == DEMO:
        from grpo_studio.engine.common.demo import demo_model_dir

        folder = demo_model_dir()
    else:
        from grpo_studio.engine.common.errors import StudioError
        from grpo_studio.engine.common.sources import local_model_folder

        try:
            folder = local_model_folder(model)
        except StudioError:  # not on this machine: fall back to estimates below
            folder = None
    if folder is not None and (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return (lambda text: tokenizer.encode(text, add_special_tokens=False).ids), _has_chat_template(folder), []
    notes = [f"no tokenizer.json found for model '{model}': completion lengths are estimated (4 characters "
             "a token) and chat prompts assumed"]
    return (lambda text: [0] * max(1, len(text) // 4)), True, notes


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return False


def format_report(result: dict) -> str:
    names = [f["name"] for f in result["functions"]]
    lines = [f"{f['name']} (weight {f['weight']:g}): {f['description']}" for f in result["functions"]] + [""]
    header = ["row", "kind", "completion"] + names + ["total"]
    table = [[str(r["row"]), r["kind"], clip(" ".join(r["completion"].split()), 48)]
             + [_number(r["rewards"][n]) for n in names] + [_number(r["total"])] for r in result["rows"]]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in table]
    for error in result["errors"]:
        lines += ["", f"error: {error['message']}", f"hint: {error['hint']}"]
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.3g}"
