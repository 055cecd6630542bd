"""Benchmark: how often math_correct credits competition answers stated as the reference states them, and
how often it credits another reference's answer (issue 23, part 4).

The cases are tests/stated_answer_cases.py: every reference in every template (positives) and every
reference against every other reference's answer in every template (negatives; --others N samples N other
references per reference instead).

    python tests/benchmarks/bench_stated_answers.py            # all pairs (a few minutes on 2 cores)
    python tests/benchmarks/bench_stated_answers.py --others 5

Prints one JSON object: the counts, the hit and false-positive rates, the misses and false positives.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stated_answer_cases import negatives, positives, rates  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--others", type=int, default=None, help="other references per reference (default: all)")
    args = parser.parse_args(argv)
    from grpo_studio.engine.common.reward_functions import math_correct

    def score(completions, references):
        return math_correct([None] * len(completions), completions, answer=references)

    started = time.perf_counter()
    pos, neg = positives(), negatives(args.others)
    hit, false_rate, missed, false = rates(score, pos, neg)
    print(json.dumps({"positives": len(pos), "negatives": len(neg), "hit_rate": round(hit, 4),
                      "false_positive_rate": round(false_rate, 5), "missed": missed, "false_positives": false,
                      "seconds": round(time.perf_counter() - started, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
