"""Final answers written in words, and plain-text math made readable for math-verify. Torch-free.

`sentence_answer` finds the answer in "The answer is 2^(n-1)." or "... is given by the expression
n(n-3)/2." (only phrases that announce an answer: "equals" and "is equal to" also appear in the steps
before it): the text after the last such phrase, up to the end of its sentence, cut at the first ordinary
word ("5 apples" -> "5", "(n-1)/2! for odd n" -> "(n-1)/2!"), so the words around an answer never reach
the comparison. `plain_to_latex` writes plain-text math (2^(n-1), floor(n/2), sqrt(2), x**2) the way
math-verify's LaTeX parser reads it (2^{(n-1)}, \\lfloor n/2\\rfloor, \\sqrt{2}, x^{2}).
"""
from __future__ import annotations

import re

# "the answer is", "final answer:", "answer = ", "is given by (the expression|formula)"
_PHRASE = re.compile(r"\banswer\s*(?:is\s*:?|:|=)\s*|\bis\s+given\s+by(?:\s+the\s+(?:expression|formula))?\s*:?\s*",
                     re.IGNORECASE)
_TOKEN = re.compile(r"\\[A-Za-z]+|[A-Za-z]+|\d+(?:[.,]\d+)*|\s+|\S")
MATH_WORDS = {"floor", "ceil", "sqrt", "log", "ln", "exp", "sin", "cos", "tan", "pi", "mod", "binom"}
_STOP_COMMANDS = {"\\text", "\\mbox", "\\quad", "\\qquad", "\\textbf", "\\mathrm"}
_FUNCTIONS = {"floor": ("\\lfloor ", "\\rfloor "), "ceil": ("\\lceil ", "\\rceil "), "sqrt": ("\\sqrt{", "}")}


def sentence_answer(text: str) -> str | None:
    """The answer after the last "the answer is" / "is given by" / "equals" phrase, or None."""
    matches = list(_PHRASE.finditer(text))
    if not matches:
        return None
    tail = text[matches[-1].end():].split("\n", 1)[0].strip()
    if tail.startswith("$"):  # inline LaTeX: exactly what the dollars enclose
        end = tail.find("$", 1)
        return tail[1:end].strip() or None if end > 0 else None
    tail = re.split(r"\.(?:\s|$)", tail, maxsplit=1)[0]  # the sentence ends at a period before a space
    return math_prefix(tail) or None


def math_prefix(text: str) -> str:
    """The leading run of `text` that is math: stops at the first word that is not a variable (one letter)
    or a known function, and at prose commands like \\text; trailing punctuation dropped."""
    kept = []
    for token in _TOKEN.findall(text):
        if token.isalpha() and len(token) > 1 and token.lower() not in MATH_WORDS:
            break
        if token in _STOP_COMMANDS or token == "$":
            break
        kept.append(token)
    prefix = "".join(kept).strip()
    while prefix and prefix[-1] in ",;:":
        prefix = prefix[:-1].rstrip()
    if prefix.count("(") != prefix.count(")"):
        return ""  # cut in the middle of a bracket: not an expression
    return prefix


def _matching(text: str, start: int, open_: str = "(", close: str = ")") -> int:
    """Index of the bracket closing the one at `start` (-1 if unbalanced)."""
    depth = 0
    i = start
    while i < len(text):
        if text.startswith(open_, i):
            depth += 1
            i += len(open_)
            continue
        if text.startswith(close, i):
            depth -= 1
            if depth == 0:
                return i
            i += len(close)
            continue
        i += 1
    return -1


def plain_to_latex(text: str) -> str:
    """Plain-text math as LaTeX math-verify parses; text that already has LaTeX commands is left alone."""
    if "\\" in text or "$" in text:
        return text
    text = text.replace("**", "^")
    pattern = re.compile(r"\b(floor|ceil|sqrt)\s*\(")
    while (match := pattern.search(text)) is not None:
        open_at = match.end() - 1
        close_at = _matching(text, open_at)
        if close_at < 0:
            break
        left, right = _FUNCTIONS[match.group(1)]
        text = text[:match.start()] + left + text[open_at + 1:close_at] + right + text[close_at + 1:]
    return _brace_exponents(text)


def _brace_exponents(text: str) -> str:
    """x^(a+b) -> x^{(a+b)}, 2^\\lfloor n/2\\rfloor -> 2^{\\lfloor n/2\\rfloor}, x^10 -> x^{10}."""
    out, i = [], 0
    while i < len(text):
        if text[i] != "^" or text[i + 1:i + 2] in ("{", ""):
            out.append(text[i])
            i += 1
            continue
        j = i + 1
        while j < len(text) and text[j] == " ":
            j += 1
        end = -1
        for open_, close in (("(", ")"), ("\\lfloor", "\\rfloor"), ("\\lceil", "\\rceil")):
            if text.startswith(open_, j):
                end = _matching(text, j, open_, close)
                end = end + len(close) if end >= 0 else -1
                break
        else:
            run = re.match(r"\\sqrt\{|[A-Za-z0-9.]+", text[j:])
            if run and run.group() == "\\sqrt{":
                close_at = _matching(text, j + len("\\sqrt"), "{", "}")
                end = close_at + 1 if close_at >= 0 else -1
            elif run:
                end = j + len(run.group())
        if end < 0:
            out.append(text[i])
            i += 1
            continue
        out.append("^{" + text[j:end].strip() + "}")
        i = end
    return "".join(out)
