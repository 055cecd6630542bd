"""The built-in reward functions, each with TRL's signature, so they can be used in TRL and vice versa:

    f(prompts, completions, completion_ids=None, **dataset_columns) -> list[float | None]

A completion is a string, or (for chat prompts) a list of messages whose last one is the assistant's
reply; every built-in accepts both. The first docstring line is what the GUI shows.

`math_correct` reads the reference from the `answer` keyword: the dataset's answer column is passed under
that name whatever it is called (engine.data.dataset adds it to every row's columns).

Tags and limits are set through the factories (`make_format_strict(think="reasoning", answer="solution")`,
`make_length_penalty(max_len=1024, buffer=256)`, ...). To use one in a run, put it in a reward file and
name that file in the config: `rewards: [{name: my_rewards.py:format_strict_solution}]`, where
my_rewards.py has `format_strict_solution = make_format_strict(answer="solution")`.
"""
from __future__ import annotations

import inspect
import math
import re
import threading
from collections.abc import Callable
from typing import Any

from grpo_studio.engine.common.answer_text import plain_to_latex, sentence_answer
from grpo_studio.engine.common.stated_answer import stated_answer_matches, units_conflict

RewardFn = Callable[..., list]

# ---------------------------------------------------------------------------------------------------------
# Extracting a final answer

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
MAX_VERIFY_CHARS = 400  # longer "answers" are not worth a sympy parse (and could hang it without a timeout)


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the content of the last message of a conversation."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else str(content)
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return "" if completion is None else str(completion)


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), with nested braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None  # unclosed: the model ran out of tokens


def extract_answer(text: str, answer_tag: str = "answer") -> str | None:
    """The final answer in a completion: the last \\boxed{}, else the last <answer>...</answer>, else what
    follows the last `####`, else the answer a sentence announces ("The answer is 2^(n-1)."), else the last
    number. None when there is none."""
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed
    tagged = re.findall(rf"<{answer_tag}>(.*?)</{answer_tag}>", text, re.DOTALL)
    if tagged:
        return tagged[-1].strip()
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        return tail.splitlines()[0].strip() if tail else None
    stated = sentence_answer(text)
    if stated is not None:
        return stated
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _normalise(text: str) -> str:
    text = text.strip().strip("$").strip()
    text = re.sub(r"^\\text\{(.*)\}$", r"\1", text)
    text = text.rstrip(".").replace("\\!", "").replace("\\,", "")
    return re.sub(r"\s+", "", text)


def _as_number(text: str) -> float | None:
    text = _normalise(text).replace(",", "")
    text = re.sub(r"^\\?\$|%$|^\\%", "", text)
    try:
        if re.fullmatch(r"-?\d+/\d+", text):
            top, bottom = text.split("/")
            return int(top) / int(bottom) if int(bottom) else None
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def answers_match(predicted: str, reference: str) -> bool:
    """Equal as strings or numbers (fast), else symbolically equal according to math-verify."""
    if _normalise(predicted) == _normalise(reference):
        return True
    a, b = _as_number(predicted), _as_number(reference)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if len(predicted) > MAX_VERIFY_CHARS:
        return False
    return _math_verify(predicted, reference)


def _math_verify(predicted: str, reference: str) -> bool:
    from math_verify import parse, verify

    # math-verify times out with signal.alarm, which only works in the main thread; elsewhere (a GUI or
    # server thread) it would raise, so run without its timeout there: inputs are short (MAX_VERIFY_CHARS).
    seconds = 5 if threading.current_thread() is threading.main_thread() else None
    if seconds is None:  # we bound the input instead; silence its once-per-process warning about that
        import math_verify.grader
        import math_verify.parser

        math_verify.parser.TIMEOUT_WARNING_SHOWN = math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    try:
        gold = parse(_latex(reference), parsing_timeout=seconds)
        guess = parse(_latex(predicted), parsing_timeout=seconds)
        return bool(gold and guess and verify(gold, guess, timeout_seconds=seconds))
    except Exception:  # noqa: BLE001 - an unparsable answer is simply not a match
        return False


def _latex(text: str) -> str:
    """Give math-verify's LaTeX extractor something it anchors on (plain-text math written as LaTeX)."""
    return text if "$" in text or "\\boxed" in text else f"${plain_to_latex(text)}$"


# ---------------------------------------------------------------------------------------------------------
# The built-ins


def math_correct(prompts: list, completions: list, completion_ids: list | None = None, *,
                 answer: list | None = None, **kwargs: Any) -> list[float | None]:
    """1 if the final answer (\\boxed{}, <answer>, ####, a sentence, or last number) equals the answer column
    (also in words, as a list, with units or "or equivalently"), else 0."""
    if answer is None:
        raise ValueError("math_correct needs the reference answers: set dataset.answer_column to the column "
                         "that holds them")
    scores: list[float | None] = []
    for completion, reference in zip(completions, answer):
        if reference is None or str(reference).strip() == "":
            scores.append(None)  # no reference for this row: the reward does not apply
            continue
        reference = str(reference)
        if "####" in reference or "\\boxed" in reference:  # a worked solution (GSM8K, MATH): use its end
            reference = extract_answer(reference) or reference
        text = completion_text(completion)
        predicted = extract_answer(text)
        right = predicted is not None and answers_match(predicted, reference)
        # words, lists, units, "or equivalently": the answer stated as the reference states it
        right = right or stated_answer_matches(text, predicted, reference, answers_match)
        right = right and not units_conflict(text, predicted, reference)
        scores.append(1.0 if right else 0.0)
    return scores


def make_format_strict(think: str = "think", answer: str = "answer") -> RewardFn:
    """A reward of 1 when the whole completion is <think>...</think> then <answer>...</answer>."""
    shape = re.compile(rf"\s*<{think}>.*?</{think}>\s*<{answer}>.*?</{answer}>\s*", re.DOTALL)

    def format_strict(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        return [1.0 if shape.fullmatch(completion_text(c)) else 0.0 for c in completions]

    format_strict.__doc__ = (f"1 if the whole completion is <{think}>…</{think}> then <{answer}>…</{answer}> "
                             "and nothing else, else 0.")
    return format_strict


def make_format_soft(think: str = "think", answer: str = "answer") -> RewardFn:
    """A reward of 1 when both tag pairs appear, in order, anywhere in the completion."""
    shape = re.compile(rf"<{think}>.*?</{think}>.*?<{answer}>.*?</{answer}>", re.DOTALL)

    def format_soft(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        return [1.0 if shape.search(completion_text(c)) else 0.0 for c in completions]

    format_soft.__doc__ = (f"1 if <{think}>…</{think}> and then <{answer}>…</{answer}> appear anywhere in "
                           "the completion, else 0.")
    return format_soft


def make_xml_count(think: str = "think", answer: str = "answer", per_tag: float = 0.125,
                   trailing_penalty: float = 0.001) -> RewardFn:
    """Partial credit per tag used exactly once, minus a little per character after the closing tag."""
    tags = (f"<{think}>", f"</{think}>", f"<{answer}>", f"</{answer}>")

    def xml_count(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        scores = []
        for completion in completions:
            text = completion_text(completion)
            score = sum(per_tag for tag in tags if text.count(tag) == 1)
            if text.count(tags[3]) == 1:  # text after the answer is wasted tokens: charge per character
                trailing = text.split(tags[3], 1)[1].strip()
                score -= min(per_tag, trailing_penalty * len(trailing))
            scores.append(score)
        return scores

    xml_count.__doc__ = (f"{per_tag:g} for each of {' '.join(tags)} used exactly once, minus "
                         f"{trailing_penalty:g} per character after {tags[3]} (up to {per_tag:g}); max "
                         f"{4 * per_tag:g}.")
    return xml_count


DEFAULT_MAX_LEN = 256  # the config's default grpo.max_completion_length


def make_length_penalty(max_len: int = DEFAULT_MAX_LEN, buffer: int | None = None) -> RewardFn:
    """DAPO's soft overlong punishment: 0 up to max_len - buffer tokens, then linear down to -1 at max_len."""
    buffer = max(1, max_len // 4) if buffer is None else buffer
    if not 0 < buffer <= max_len:
        raise ValueError(f"length penalty: buffer must be in 1..max_len ({max_len}), got {buffer}")
    free = max_len - buffer

    def length(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        # Lengths in tokens as TRL passes them; without ids, characters / 4 is a rough token count.
        sizes = ([len(ids) for ids in completion_ids] if completion_ids is not None
                 else [len(completion_text(c)) / 4 for c in completions])
        return [0.0 if n <= free else -1.0 if n >= max_len else (free - n) / buffer for n in sizes]

    length.__doc__ = (f"Overlong penalty (DAPO): 0 up to {free} tokens, then linear to -1 at {max_len} "
                      "(max_completion_length).")
    return length


format_strict = make_format_strict()
format_soft = make_format_soft()
xml_count = make_xml_count()
length = make_length_penalty()
length.__doc__ = ("Overlong penalty (DAPO): 0 until the last quarter of max_completion_length, then linear "
                  "down to -1 at it.")


def describe(fn: Callable) -> str:
    """A function's docstring summary on one line (its first paragraph), or its name."""
    doc = inspect.getdoc(fn)
    return " ".join(doc.split("\n\n", 1)[0].split()) if doc else getattr(fn, "__name__", repr(fn))


# name -> (function, one-line description for the GUI). `length` here uses the default max_len;
# engine.rewards.scoring binds it to the run's grpo.max_completion_length when it loads the functions.
BUILTIN_REWARDS: dict[str, tuple[RewardFn, str]] = {
    fn.__name__: (fn, describe(fn)) for fn in (math_correct, format_strict, format_soft, xml_count, length)
}
