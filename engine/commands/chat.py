"""`grpo-studio chat`: one prompt answered with the adapter off (base) and on (tuned), streamed, with rewards.

With --json: {"type": "token", "side": "base"|"tuned", "text"} ..., {"type": "answer", "side", "text",
"rewards": {fn: float|null}, "reward": float|null} per side, then {"type": "done"}; errors as for export.
With --serve --json the model stays loaded and answers requests read from stdin (engine/chat/serve.py).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

NAME = "chat"
HELP = "try a trained adapter: answer a prompt with the base model and the tuned one, with reward scores"
ORDER = 65


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="RUN_DIR|ADAPTER_DIR", help="a run folder, a checkpoint or an adapter folder")
    parser.add_argument("--prompt", help="the question (rendered with the run's system prompt and chat template, "
                                         "as in training); required unless --serve")
    parser.add_argument("--answer", help="reference answer, for reward functions that need one (math_correct)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N",
                        help="longest answer (default: the run's max_completion_length)")
    parser.add_argument("--temperature", type=float, default=0.0, metavar="T",
                        help="sampling temperature (default 0: greedy, the same answer every time)")
    parser.add_argument("--base", metavar="DIR", help="the base model's folder, when the adapter's own reference "
                                                      "to it is not on this machine")
    parser.add_argument("--serve", action="store_true", help="keep the model loaded and answer JSON requests read "
                                                             "from stdin, one per line (for the app; needs --json)")
    parser.add_argument("--json", action="store_true", help="print JSON lines (for the app)")


def _text_view(emit_json: Callable[[dict], None], args: argparse.Namespace) -> Callable[[dict], None]:
    """Without --json: a readable transcript (each side's tokens, then its rewards)."""
    started: set[str] = set()
    notes: list[dict] = []  # logs that arrive mid-answer wait for its end, so they do not split the answer

    def emit(message: dict) -> None:
        kind = message["type"]
        if kind == "token" and message["side"] not in started:
            started.add(message["side"])
            print(f"\n--- {message['side']} ---", flush=True)
        if kind == "log" and started:
            notes.append(message)
        elif kind == "answer":
            rewards = ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in message["rewards"].items())
            total = "-" if message["reward"] is None else f"{message['reward']:.2f}"
            print(f"\n[reward {total}{': ' + rewards if rewards else ''}]", flush=True)
            for note in notes:
                emit_json(note)
            notes.clear()
        else:
            emit_json(message)

    return emit


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.commands.export import json_lines
    from grpo_studio.engine.common.errors import ConfigError

    if args.serve and not args.json:
        raise ConfigError("--serve speaks JSON lines", "add --json")
    if not args.serve and not args.prompt:
        raise ConfigError("--prompt is required", "give the question with --prompt TEXT")

    def body(emit: Callable[[dict], None]) -> int:
        from grpo_studio.engine.chat.answers import chat

        if args.serve:
            import sys

            from grpo_studio.engine.chat.serve import serve

            return serve(args.path, emit=emit, requests=sys.stdin, base_dir=args.base)

        view = emit if args.json else _text_view(emit, args)
        chat(args.path, args.prompt, emit=view, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
             answer=args.answer, base_dir=args.base)
        return 0

    return json_lines(args, body)
