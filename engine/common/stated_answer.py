"""Answers stated as the reference states them: words, yes/no, lists, "or equivalently", units. Torch-free.

Competition references are often not one expression: "No", "No integer solutions", "376 and 625",
"98 values", "C(10, 5), or equivalently 252". A completion that states exactly that ("The answer is No.",
"...is C(10, 5), or equivalently 252.") is right, although no single number or expression in it equals
the whole reference. `stated_answer_matches` compares the completion's stated answer (the boxed / tagged /
#### answer, else the rest of the sentence after "the answer is", else a one-line completion) with the
reference, piece by piece:

- either side may give alternatives ("X, or equivalently Y", "X, i.e. Y"): one pair that matches is enough;
- the same words (case, spacing, LaTeX \\text{} and final punctuation aside) match;
- a list ("376 and 625", "1, 2, 3") matches a list of the same items in any order, item by item;
- a number with a unit ("98 values", "12 cm", "$12.50") matches the same number with the same unit or none
  (and `units_conflict` turns "3 days" for "3 hours" into a miss, although the numbers agree);
- anything else is one mathematical expression, compared by `answers_match` (strings, numbers, math-verify).
Different words, numbers, units or list items never match: the tests hold the false-positive rate on
references paired with each other's answers at <= 1%.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from grpo_studio.engine.common.answer_text import MATH_WORDS

_ALTERNATIVES = re.compile(r"\s*,?\s*\b(?:or\s+equivalently|equivalently|i\.\s?e\.|that\s+is)\s*,?\s*", re.I)
_PHRASE = re.compile(r"\b(?:final\s+)?answer\s*(?:is\s*:?|:|=)\s*(?:that\s+)?|\bis\s+given\s+by\s*:?\s*", re.I)
_CLAUSE_END = re.compile(r",?\s+(?:because|since|as|so|which|where|for\s+(?:all|every|each))\b"
                         r"|(?<!i\.e)(?<!e\.g)\.(?:\s|$)|\n", re.I)
_LIST_SPLIT = re.compile(r"\s*(?:,|;|\band\b|&)\s*(?:and\s+)?", re.I)
_NUMBER_UNIT = re.compile(r"(\\?\$?\s*-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*(°|%|[A-Za-z][A-Za-z ]*)?")
_FILLER = re.compile(r"^(?:there\s+(?:are|is)\s+|it\s+is\s+|we\s+get\s+|exactly\s+)", re.I)
MAX_SPAN = 200  # longer "answers" are prose, not a stated answer

Match = Callable[[str, str], bool]


def stated_span(text: str) -> str | None:
    """The answer the text states: after the last "the answer is" up to the end of its clause, else the
    whole text when it is one short line. None when it states none."""
    matches = list(_PHRASE.finditer(text))
    if matches:
        tail = text[matches[-1].end():].strip()
        if tail.startswith("$") and tail.find("$", 1) > 0:  # inline LaTeX: what the dollars enclose
            return tail[1:tail.find("$", 1)].strip() or None
        cut = _CLAUSE_END.search(tail)
        span = (tail[:cut.start()] if cut else tail).strip()
        return span[:MAX_SPAN] or None
    line = text.strip()
    return line.rstrip(".") if line and "\n" not in line and len(line) <= 60 else None


def words(text: str) -> str:
    """Lower-case words without LaTeX wrappers, dollars, filler ("there are") or final punctuation."""
    text = re.sub(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}", r"\1", text)
    text = text.replace("$", "").replace("\\,", "").replace("\\!", "").replace("\\ ", " ")
    text = _FILLER.sub("", text.strip().strip(".!;:,").strip())
    return re.sub(r"\s+", " ", text).strip().strip(".!;:,").strip().lower()


def _split_top_level(text: str, pattern: re.Pattern) -> list[str]:
    """Split at `pattern` outside (), [], {}: "(2, 3) and (4, 5)" -> ["(2, 3)", "(4, 5)"]."""
    masked, depth = [], 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        masked.append(ch if depth == 0 else "\0")
    pieces, start = [], 0
    flat = "".join(masked)
    for found in pattern.finditer(flat):
        pieces.append(text[start:found.start()])
        start = found.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _number_unit(text: str) -> tuple[str, str] | None:
    found = _NUMBER_UNIT.fullmatch(words(text))
    if found is None:
        return None
    return found.group(1).replace("\\$", "").replace("$", "").strip(), (found.group(2) or "").strip()


def _same_number_unit(a: str, b: str, same: Match) -> bool | None:
    """Both a number, each with or without a unit: None when either is not; else equal numbers, and equal
    units where both have one (a bare number matches "98 values")."""
    x, y = _number_unit(a), _number_unit(b)
    if x is None or y is None:
        return None
    units_agree = not x[1] or not y[1] or _unit_word(x[1]) == _unit_word(y[1])
    return units_agree and same(x[0], y[0])


def _one(a: str, b: str, same: Match) -> bool:
    """One answer against one answer (no alternatives)."""
    if words(a) == words(b):
        return True
    by_unit = _same_number_unit(a, b, same)
    if by_unit is not None:
        return by_unit
    items_a, items_b = _split_top_level(a, _LIST_SPLIT), _split_top_level(b, _LIST_SPLIT)
    if len(items_a) > 1 or len(items_b) > 1:
        return len(items_a) == len(items_b) and _same_items(items_a, items_b, same)
    if _prose(a) or _prose(b):
        return False  # different words ("yes" / "no", "none" / "infinitely many"): never a symbolic question
    return same(a, b)


def _prose(text: str) -> bool:
    """Holds a word that is not math (a variable, a function name or a LaTeX command)."""
    return any(w.lower() not in MATH_WORDS for w in re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", words(text)))


def _same_items(items_a: list[str], items_b: list[str], same: Match) -> bool:
    """Every item of one list equals a different item of the other (order free)."""
    left = list(items_b)
    for item in items_a:
        hit = next((i for i, other in enumerate(left) if _one(item, other, same)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def alternatives(text: str) -> list[str]:
    """"C(10, 5), or equivalently 252" -> ["C(10, 5)", "252"]; a plain answer -> [answer]."""
    return _split_top_level(text, _ALTERNATIVES) or [text]


def answers_agree(predicted: str, reference: str, same: Match) -> bool:
    """The stated answer and the reference agree on one of their alternatives."""
    if len(predicted) > MAX_SPAN:
        return False
    return any(_one(p, r, same) for p in alternatives(predicted) for r in alternatives(reference))


def stated_answer_matches(text: str, extracted: str | None, reference: str, same: Match) -> bool:
    """Does the completion `text` state the reference? `extracted`: its boxed / tagged / #### answer,
    preferred over the sentence; `same`: the expression comparison (reward_functions.answers_match)."""
    span = extracted if extracted is not None and _is_explicit(text) else stated_span(text)
    return span is not None and answers_agree(span, reference, same)


def units_conflict(text: str, extracted: str | None, reference: str) -> bool:
    """The stated answer cannot be the reference although a number in it equals it: another unit ("3 days"
    for "3 hours"; units compared by their last word, singular: "possible values" and "values" agree), or a
    list where the reference is one number ("7 and 11" for "7 days")."""
    span = extracted if extracted is not None and _is_explicit(text) else stated_span(text)
    wanted = _number_unit(reference)
    if not span or wanted is None:
        return False
    stated = _number_unit(span)  # "1,000" is one number, not a list
    if stated is None and len(_split_top_level(span, _LIST_SPLIT)) > 1 and len(alternatives(reference)) == 1:
        return True
    if not (stated and stated[1] and wanted[1]):
        return False
    return _unit_word(stated[1]) != _unit_word(wanted[1])


def _unit_word(unit: str) -> str:
    """A unit by its last word, singular: "possible values" -> "value"."""
    return unit.split()[-1].rstrip("s")


def _is_explicit(text: str) -> bool:
    return "\\boxed" in text or "\\fbox" in text or "<answer>" in text or "####" in text
