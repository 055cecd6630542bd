"""The built-in reward functions on hand-written completions."""
from __future__ import annotations

import threading

import pytest

from grpo_studio.engine.common.reward_functions import (BUILTIN_REWARDS, extract_answer, format_soft, format_strict,
                                                 length, make_format_soft, make_format_strict,
                                                 make_length_penalty, make_xml_count, math_correct, xml_count)


def chat(text):
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("text, expected", [
    ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{3} no wait \\boxed{\\sqrt{x^{2}}}", "\\sqrt{x^{2}}"),  # last box, nested braces
    ("<answer> 8 </answer>", "8"),
    ("<answer>1</answer> then <answer>2</answer>", "2"),
    ("Natalia sold 48 + 24 clips.\n#### 72\nextra", "72"),
    ("first 3, then -4.5 and finally 1,200", "1,200"),
    ("no numbers here", None),
    ("unclosed \\boxed{12", "12"),  # an unclosed box falls through to the last number
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("completion, answer, expected", [
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),  # symbolic = numeric (math-verify)
    ("\\boxed{\\frac{1}{2}}", "\\frac{2}{4}", 1.0),
    ("<answer>x^2 + 2x + 1</answer>", "(x+1)^2", 1.0),
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{8}", 1.0),
    ("reasoning... #### 42", "42", 1.0),
    ("<answer> 8 </answer>", "8", 1.0),
    ("<answer>1,000</answer>", "1000", 1.0),
    ("<answer>$5.</answer>", "5", 1.0),
    ("so 3 + 4 = 7", "7", 1.0),  # last number
    ("so 7 + 1 = 8", "7", 0.0),
    ("<answer>9</answer>", "8", 0.0),
    ("<answer>\\frac{1}{3}</answer>", "0.5", 0.0),
    ("nothing", "8", 0.0),
])
def test_math_correct(completion, answer, expected):
    assert math_correct(["q"], [completion], answer=[answer]) == [expected]
    assert math_correct([[{"role": "user", "content": "q"}]], [chat(completion)], answer=[answer]) == [expected]


def test_math_correct_reads_worked_solutions_and_skips_missing_answers():
    gsm8k = "Natalia sold 48/2 = 24 clips in May.\n#### 72"
    assert math_correct(["q"] * 3, ["#### 72", "24", "7"], answer=[gsm8k, gsm8k, None]) == [1.0, 0.0, None]
    assert math_correct(["q"], ["\\boxed{4}"], answer=["The area is $\\boxed{4}$."]) == [1.0]


def test_math_correct_without_answer_column_says_what_to_set():
    with pytest.raises(ValueError, match="dataset.answer_column"):
        math_correct(["q"], ["1"])


def test_math_correct_from_another_thread():
    """math-verify's timeouts use signal.alarm, which only works in the main thread."""
    out = []
    worker = threading.Thread(target=lambda: out.append(
        math_correct(["q", "q"], ["\\boxed{\\frac{1}{2}}", "\\boxed{3}"], answer=["0.5", "\\frac{6}{2}"])))
    worker.start()
    worker.join(timeout=60)
    assert out == [[1.0, 1.0]]


def test_format_strict():
    completions = ["<think>a + b</think><answer>5</answer>",
                   "  <think>\nlong\nreasoning\n</think>\n<answer>\n5\n</answer>\n",
                   "<think>a</think><answer>5</answer> and more",
                   "preamble <think>a</think><answer>5</answer>",
                   "<answer>5</answer><think>a</think>",
                   "<think>a</think>"]
    assert format_strict(None, completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert format_strict(None, [chat(completions[0])]) == [1.0]


def test_format_soft():
    completions = ["<think>a</think><answer>5</answer>",
                   "preamble <think>a</think> so <answer>5</answer> trailing",
                   "<answer>5</answer><think>a</think>",
                   "<think>a</think> 5"]
    assert format_soft(None, completions) == [1.0, 1.0, 0.0, 0.0]
    assert format_soft(None, [chat(c) for c in completions]) == [1.0, 1.0, 0.0, 0.0]


def test_format_tags_are_configurable():
    strict = make_format_strict(think="reasoning", answer="solution")
    soft = make_format_soft(think="reasoning", answer="solution")
    text = "<reasoning>r</reasoning><solution>4</solution>"
    assert strict(None, [text, "<think>r</think><answer>4</answer>"]) == [1.0, 0.0]
    assert soft(None, ["x " + text]) == [1.0]
    assert strict.__name__ == "format_strict" and "<reasoning>" in strict.__doc__


def test_xml_count_partial_credit():
    full = "<think>a</think><answer>5</answer>"
    scores = xml_count(None, [full, "<think>a</think>", "<think><think>", full + "x" * 50, full + "x" * 500])
    assert scores == pytest.approx([0.5, 0.25, 0.0, 0.45, 0.375])
    custom = make_xml_count(think="r", answer="s", per_tag=0.25)
    assert custom(None, ["<r>a</r><s>1</s>"]) == [1.0]


def test_length_penalty_is_dapo_soft_overlong():
    penalty = make_length_penalty(max_len=100, buffer=20)
    ids = [[0] * n for n in (10, 80, 90, 95, 100, 130)]
    assert penalty(None, ["x"] * 6, ids) == pytest.approx([0.0, 0.0, -0.5, -0.75, -1.0, -1.0])
    assert length(None, ["x"], [[0] * 256]) == [-1.0]  # default: max 256, buffer 64
    assert length(None, ["x"], [[0] * 192]) == [0.0]
    assert penalty(None, ["y" * 400]) == [-1.0]  # no ids: ~4 characters a token
    with pytest.raises(ValueError, match="buffer"):
        make_length_penalty(max_len=10, buffer=20)


def test_registry_has_one_line_descriptions():
    assert list(BUILTIN_REWARDS) == ["math_correct", "format_strict", "format_soft", "xml_count", "length"]
    for name, (fn, description) in BUILTIN_REWARDS.items():
        assert fn.__name__ == name and description and "\n" not in description


# Competition-style final answers written in sentences. Both kinds of mistake are checked: a correct answer
# stated in words must be found and compared symbolically; a different expression must never pass.
@pytest.mark.parametrize("completion, answer", [
    ("Each element is in or out of the subset, and the parity fixes the last one. The answer is 2^(n-1).",
     "2^{n-1}"),
    ("Every vertex joins n-3 others and each diagonal is counted twice, so the number of diagonals is "
     "given by the expression n(n-3)/2.", "\\frac{n(n-3)}{2}"),
    ("Expanding, the answer is (n^2 - 3n)/2.", "\\frac{n(n-3)}{2}"),
    ("Therefore the final answer is sqrt(2)/2.", "\\frac{\\sqrt{2}}{2}"),
    ("Pairing the terms, the answer is 2^floor(n/2) * floor(n/2)!.", "2^{\\lfloor n/2\\rfloor}\\lfloor n/2\\rfloor!"),
    ("Counting the arrangements, the answer is 12 ways.", "12"),
    ("The answer is $\\frac{3}{4}$, as the symmetry suggests.", "0.75"),
    ("Final answer: 2**n / 2", "2^{n-1}"),
])
def test_math_correct_finds_answers_stated_in_sentences(completion, answer):
    assert math_correct(["q"], [completion], answer=[answer]) == [1.0]


@pytest.mark.parametrize("completion, answer", [
    ("The answer is (n-1)/2! for odd n and (n/2)! for even n.", "2^{\\lfloor n/2\\rfloor}\\lfloor n/2\\rfloor!"),
    ("The answer is (n-1)/2! for odd n and (n/2)! for even n.", "2^floor(n/2)*floor(n/2)!"),
    ("The answer is 2^(n+1).", "2^{n-1}"),
    ("The answer is 2^n.", "2^(n-1)"),
    ("So the number of diagonals is given by the expression n(n-3).", "\\frac{n(n-3)}{2}"),
    ("Hence the answer is (n-1)!", "n!"),
    ("The answer is x^2 + 1.", "(x+1)^2"),
    ("So the answer is 1/2 when n is even.", "\\frac{1}{3}"),
    # the last number is 1, but the stated answer is an expression: the old last-number rule passed this
    ("For n = 1 this gives 2^(n-1) = 1, so the answer is 2^(n-1).", "1"),
])
def test_math_correct_never_passes_a_different_expression(completion, answer):
    assert math_correct(["q"], [completion], answer=[answer]) == [0.0]


@pytest.mark.parametrize("text, expected", [
    ("The answer is 2^(n-1).", "2^(n-1)"),
    ("It is given by the expression n(n-3)/2.", "n(n-3)/2"),
    ("The answer is (n-1)/2! for odd n and (n/2)! for even n.", "(n-1)/2!"),  # words never reach math-verify
    ("the answer is 1,200, since 3.5 > 2", "1,200"),
    ("So the answer: $2^{n}$ in general", "2^{n}"),
    ("x equals 3 and y is equal to 4, so the total is 7", "7"),  # no answer phrase: the last number
])
def test_extract_answer_from_sentences(text, expected):
    assert extract_answer(text) == expected


def test_plain_text_math_becomes_latex_math_verify_reads():
    from grpo_studio.engine.common.answer_text import plain_to_latex

    assert plain_to_latex("2^(n-1)") == "2^{(n-1)}"
    assert plain_to_latex("2^floor(n/2)*floor(n/2)!") == "2^{\\lfloor n/2\\rfloor} *\\lfloor n/2\\rfloor !"
    assert plain_to_latex("sqrt(2)*x**10") == "\\sqrt{2}*x^{10}"
    assert plain_to_latex("\\frac{1}{2}") == "\\frac{1}{2}"  # already LaTeX: untouched
