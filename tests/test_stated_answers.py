"""math_correct on competition answers stated as the reference states them (words, yes/no, lists, units,
"or equivalently"), and never on another answer: the issue's cases, a built set of every reference in
every template, and the references paired with each other's answers (false positives <= 1%)."""
import pytest

from grpo_studio.engine.common.reward_functions import math_correct
from grpo_studio.engine.common.stated_answer import alternatives, stated_span
from stated_answer_cases import negatives, positives, rates


def score(completions, references):
    return math_correct([None] * len(completions), completions, answer=references)


@pytest.mark.parametrize("completion, reference", [
    ("We checked every residue. The answer is No.", "No"),
    ("Counting subsets, the answer is C(10, 5), or equivalently 252.", "C(10, 5), or equivalently 252"),
    ("Both satisfy n^2 = n mod 1000, so the answer is 376 and 625.", "376 and 625"),
    ("So the answer is 98 values.", "98 values"),
    ("Modulo 4 rules everything out, so the answer is no integer solutions.", "No integer solutions"),
    ("The answer is 252.", "C(10, 5), or equivalently 252"),  # either alternative
    ("The answer is 625 and 376.", "376 and 625"),  # a list in another order
    ("The answer is 98.", "98 values"),  # the number without its unit
    ("Final answer: yes, because the sum is even.", "Yes"),
    ("<answer>infinitely many</answer>", "infinitely many"),
    ("Thus the answer is $\\boxed{(2, 3) \\text{ and } (3, 2)}$.", "(2, 3) and (3, 2)"),
    ("The answer is 45 degrees, or equivalently \\frac{\\pi}{4}.", "\\frac{\\pi}{4}, or equivalently 45 degrees"),
])
def test_the_issues_answers_stated_in_a_sentence_score_one(completion, reference):
    assert score([completion], [reference]) == [1.0]


@pytest.mark.parametrize("completion, reference", [
    ("The answer is Yes.", "No"),
    ("The answer is 376.", "376 and 625"),  # half a list
    ("The answer is 376 and 624.", "376 and 625"),
    ("The answer is 1, 2, 3, 4.", "1, 2, 3"),
    ("The answer is 99 values.", "98 values"),
    ("The answer is 3 days.", "3 hours"),  # same number, another unit
    ("<answer>12 m</answer>", "12 cm"),
    ("The answer is integer solutions.", "No integer solutions"),
    ("The answer is x = 1.", "x = 1 or x = -2"),
    ("The answer is (3, 2).", "(2, 3)"),  # an ordered pair is not a list
    ("The answer is Bob wins.", "Alice"),
    ("The answer is 2^n.", "2^(n-1)"),
])
def test_near_misses_score_zero(completion, reference):
    assert score([completion], [reference]) == [0.0]


def test_every_reference_stated_in_every_template_scores_one_and_others_answers_do_not():
    pos, neg = positives(), negatives(others_per_reference=3, seed=0)
    hit_rate, false_rate, missed, false = rates(score, pos, neg)
    assert len(pos) >= 500 and len(neg) >= 1500
    assert hit_rate == 1.0, missed
    assert false_rate <= 0.01, false


def test_stated_span_and_alternatives():
    assert stated_span("Hence the final answer is: 376 and 625, since both work.") == "376 and 625"
    assert stated_span("the answer is 1/8, i.e. 0.125. Done.") == "1/8, i.e. 0.125"
    assert stated_span("No") == "No" and stated_span("first line\nsecond") is None
    assert alternatives("C(10, 5), or equivalently 252") == ["C(10, 5)", "252"]
    assert alternatives("(2, 3) and (3, 2)") == ["(2, 3) and (3, 2)"]
