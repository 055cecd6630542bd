"""Competition-style reference answers and the ways completions state them (issue 23, part 4).

`positives`: each reference stated verbatim in each template: math_correct must give 1.
`negatives`: each reference against completions stating other references' answers: it must give 0 (no two
references here mean the same thing). `rates` measures both for any scoring function."""
from __future__ import annotations

import random

REFERENCES = [
    # yes / no and words
    "No", "Yes", "No integer solutions", "infinitely many", "none", "impossible", "Alice", "the second player",
    "all even n", "only the empty set", "never", "always", "Bob wins", "it is not possible",
    # lists
    "376 and 625", "1, 2, 3", "2, 3 and 5", "x = 1 or x = -2", "(2, 3) and (3, 2)", "7 and 11", "0 and 1",
    "-4, 0, 4", "1/2 and 2", "3, 5, 7, 11",
    # "or equivalently"
    "C(10, 5), or equivalently 252", "2^10, or equivalently 1024", "\\frac{\\pi}{4}, or equivalently 45 degrees",
    "1/8, i.e. 0.125", "10!, or equivalently 3628800",
    # units and counted things
    "98 values", "12 cm", "5 meters", "$12.50", "45°", "3 hours", "250 ways", "7 days", "60%", "16 square units",
    "30 minutes", "4 solutions", "64 cubes", "2.5 kg",
    # expressions
    "2^(n-1)", "n(n-3)/2", "\\sqrt{2}", "\\frac{1}{3}", "(2, 3)", "x = 3", "3/4", "floor(n/2)", "3\\sqrt{3}",
    "\\pi", "2\\pi", "e^2", "n^2 + 1", "\\frac{7}{12}", "\\binom{8}{3}",
    # plain numbers
    "17", "-1", "0", "2023", "0.75", "144", "1000000", "-37", "91", "6",
]

TEMPLATES = [
    "The answer is {}.",
    "After checking every case, the answer is {}.",
    "Therefore, the final answer is {}.",
    "So the answer is: {}",
    "Final answer: {}",
    "Putting it all together, the answer is {}. This completes the solution.",
    "<answer>{}</answer>",
    "Hence the answer is $\\boxed{{{}}}$.",
]


def completion(template: str, answer: str) -> str:
    return template.format(answer)


def positives() -> list[tuple[str, str]]:
    """(completion, reference) pairs that state the reference itself."""
    return [(completion(t, r), r) for r in REFERENCES for t in TEMPLATES]


def negatives(others_per_reference: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """(completion, reference) pairs whose completion states another reference's answer; all other
    references, or a seeded sample of `others_per_reference` of them."""
    rng = random.Random(seed)
    pairs = []
    for i, reference in enumerate(REFERENCES):
        others = [r for j, r in enumerate(REFERENCES) if j != i]
        if others_per_reference is not None:
            others = rng.sample(others, others_per_reference)
        pairs += [(completion(t, other), reference) for other in others for t in TEMPLATES]
    return pairs


def rates(score, pairs_pos: list, pairs_neg: list) -> tuple[float, float, list, list]:
    """(share of positives scored 1, share of negatives scored 1, the missed positives, the false positives).
    `score(completions, references) -> list[float]`."""
    got_pos = score([c for c, _ in pairs_pos], [r for _, r in pairs_pos])
    got_neg = score([c for c, _ in pairs_neg], [r for _, r in pairs_neg])
    missed = [p for p, s in zip(pairs_pos, got_pos) if s != 1.0]
    false = [p for p, s in zip(pairs_neg, got_neg) if s == 1.0]
    return 1 - len(missed) / len(pairs_pos), len(false) / len(pairs_neg), missed, false
