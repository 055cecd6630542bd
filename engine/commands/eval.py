"""`grpo-studio eval`: held-out accuracy and reward of a finished run, a checkpoint or an adapter.

With --json every line is one JSON object: {"type": "log", "message"} ..., one {"type": "eval", ...} per
model evaluated (the fields of the run's own eval events, plus "side": base | tuned and "adapter"), or
{"type": "error", "kind", "message", "hint"} with a nonzero exit code.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

NAME = "eval"
HELP = "score a run (or a checkpoint) on held-out questions: accuracy and reward, before -> after with --with-base"
ORDER = 62


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="RUN|ADAPTER_DIR", help="a run (its name, as `grpo-studio runs` lists it, "
                                                                "or its folder), a checkpoint or an adapter folder")
    parser.add_argument("--data", metavar="FILE", help="held-out questions with the training data's columns "
                                                       "(default: the run's eval.path)")
    parser.add_argument("--split", metavar="NAME", help="split of --data (or of the training dataset), e.g. test "
                                                        "or 'train[90%%:]'")
    parser.add_argument("--checkpoint", metavar="step-N", help="evaluate this checkpoint of the run instead of "
                                                               "its final adapter")
    parser.add_argument("--num-prompts", type=int, metavar="N", help="held-out prompts to score (default: the "
                                                                      "run's eval.num_prompts, 64)")
    parser.add_argument("--sample", action="store_true", help="sample with the run's temperature instead of "
                                                              "greedy answers")
    parser.add_argument("--with-base", action="store_true", help="also evaluate the base model (adapter off) "
                                                                 "and print before -> after")
    parser.add_argument("--base", metavar="DIR", help="the base model's folder, when the adapter's own reference "
                                                      "to it is not on this machine")
    parser.add_argument("--json", action="store_true", help="print JSON lines (for the app)")


def describe(result: dict) -> str:
    """One line: accuracy (with counts), mean reward, answer length."""
    accuracy, judge = result.get("accuracy"), result.get("accuracy_reward")
    shown = "-" if accuracy is None else f"{accuracy:.2f}"
    reward = "-" if result.get("reward") is None else f"{result['reward']:.3f}"
    step = result.get("step")
    label = f"{result.get('side', 'tuned')}{'' if step is None else f' (step {step})'}"
    return (f"{label:<18} held-out accuracy {shown} (share of {result['num_prompts']} prompts with {judge} = 1), "
            f"mean reward {reward}, {result.get('completion_length', 0):.1f} tokens per answer")


def _text_view(print_line: Callable[[str], None]) -> Callable[[dict], None]:
    results: list[dict] = []

    def emit(message: dict) -> None:
        if message["type"] == "log":
            print_line(message["message"])
            return
        if message["type"] != "eval":
            return
        results.append(message)
        print(describe(message), flush=True)
        for example in message.get("examples", []):
            mark = {True: "right", False: "wrong", None: "-"}[example.get("correct")]
            print(f"    {example['prompt']!r} -> {example['completion']!r} [{mark}]", flush=True)
        if len(results) == 2 and all(r.get("accuracy") is not None for r in results):
            before, after = results
            print(f"held-out accuracy: {before['accuracy']:.2f} -> {after['accuracy']:.2f}", flush=True)

    return emit


def run(args: argparse.Namespace) -> int:
    import sys

    from grpo_studio.engine.commands.export import _source, json_lines
    from grpo_studio.engine.common.errors import ConfigError

    if args.num_prompts is not None and args.num_prompts < 1:
        raise ConfigError(f"--num-prompts must be at least 1, not {args.num_prompts}")

    def body(emit: Callable[[dict], None]) -> int:
        from grpo_studio.engine.evaluate.adapter import evaluate_run

        view = emit if args.json else _text_view(lambda line: print(line, file=sys.stderr, flush=True))
        evaluate_run(_source(args.path), view, data=args.data, split=args.split, checkpoint=args.checkpoint,
                     num_prompts=args.num_prompts, greedy=False if args.sample else None,
                     with_base=args.with_base, base_dir=args.base)
        return 0

    return json_lines(args, body)
