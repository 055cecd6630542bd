"""A stand-in for `grpo-studio` in GUI tests: prints the recorded JSON the real commands print, so the GUI's
export / try / try-rewards / preview / train handling is tested without torch or a model.

    python fake_cli.py export RUN --gguf OUT ... --json
    python fake_cli.py chat RUN --prompt TEXT ... --json
    python fake_cli.py try-rewards CONFIG --rows 5 --json
    python fake_cli.py train CONFIG --run-dir D      (replays demo_events.jsonl into D, like a short run)

$FAKE_CLI_FAIL=1 makes every command fail the way the real CLI does (JSON error + exit code).
$FAKE_CLI_LOG (a file) gets one line per call with the arguments, so tests can check what the GUI asked for.
"""
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def out(message: dict) -> None:
    print(json.dumps(message), flush=True)


def main(argv: list[str]) -> int:
    if os.environ.get("FAKE_CLI_LOG"):
        with open(os.environ["FAKE_CLI_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps(argv) + "\n")
    command = argv[0]
    if os.environ.get("FAKE_CLI_FAIL"):
        if command in ("export", "chat"):
            out({"type": "error", "kind": "export", "message": "no adapter in this run",
                 "hint": "finish or stop the run first"})
        else:
            out({"error": {"kind": "data", "message": "fake failure", "hint": "none"}})
        return 3
    if command == "export":
        gguf = argv[argv.index("--gguf") + 1] if "--gguf" in argv else None
        out({"type": "log", "message": "reading adapter"})
        out({"type": "log", "message": "writing GGUF"})
        files = []
        if gguf:
            Path(gguf).parent.mkdir(parents=True, exist_ok=True)
            Path(gguf).write_bytes(b"GGUF" + b"\0" * 1020)
            files.append({"path": gguf, "kind": "gguf", "bytes": 1024})
        ollama = None
        if "--ollama" in argv and gguf:
            modelfile = Path(gguf).parent / "Modelfile"
            modelfile.write_text(f"FROM {argv[argv.index('--ollama') + 1]}\nADAPTER {gguf}\n")
            files.append({"path": str(modelfile), "kind": "modelfile", "bytes": modelfile.stat().st_size})
            ollama = f"ollama create my-model -f {modelfile}"
        out({"type": "result", "files": files, "ollama_command": ollama})
        return 0
    if command == "chat" and "--serve" in argv:
        return fake_chat_serve()
    if command == "chat":
        for side, text in (("base", ["The", " answer", " is", " 11"]), ("tuned", ["<answer>", "12", "</answer>"])):
            for piece in text:
                out({"type": "token", "side": side, "text": piece})
        out({"type": "answer", "side": "base", "text": "The answer is 11", "rewards": {"math_correct": 0.0},
             "reward": 0.0})
        out({"type": "answer", "side": "tuned", "text": "<answer>12</answer>", "rewards": {"math_correct": 1.0},
             "reward": 1.0})
        out({"type": "done"})
        return 0
    if command == "try-rewards":
        rows = [{"prompt": f"{a}+{b}=", "completion": f"<answer>{a + b}</answer>",
                 "rewards": {"math_correct": 1.0, "format_strict": 0.0}, "total": 1.0} for a, b in ((1, 2), (3, 4))]
        out({"rows": rows, "functions": [{"name": "math_correct", "weight": 1.0, "description": "exact answer"},
                                         {"name": "format_strict", "weight": 0.5, "description": "tags"}]})
        return 0
    if command == "preview":
        out({"columns": ["question", "answer"], "rows": [{"question": "1+1?", "answer": "2"}], "num_rows": 1,
             "suggested": {"prompt_column": None, "question_column": "question", "answer_column": "answer"}})
        return 0
    if command == "train":
        return fake_train(argv)
    print(f"error: unknown command {command}", file=sys.stderr)
    return 2


def fake_chat_serve() -> int:
    """`chat --serve`: "loads" once, then answers each JSON request from stdin until stdin ends. The answer
    repeats the request's prompt, so a test can tell the requests apart; prompt "slow" streams until a stop."""
    out({"type": "log", "message": "loading the adapter"})
    out({"type": "ready"})
    while line := sys.stdin.readline():
        request = json.loads(line)
        if request.get("cmd") == "stop":
            continue
        prompt = request["prompt"]
        if prompt == "slow":  # tokens until the app sends stop (read between tokens)
            import select
            while not select.select([sys.stdin], [], [], 0.05)[0]:
                out({"type": "token", "side": "base", "text": "."})
            sys.stdin.readline()
            out({"type": "answer", "side": "base", "text": "...", "rewards": {}, "reward": None})
            out({"type": "done", "stopped": True})
            continue
        for side, text in (("base", f"base: {prompt}"), ("tuned", f"tuned: {prompt}")):
            out({"type": "token", "side": side, "text": text})
            reward = 1.0 if side == "tuned" and request.get("answer") else 0.0
            out({"type": "answer", "side": side, "text": text, "rewards": {"math_correct": reward}, "reward": reward})
        out({"type": "done"})
    return 0


def fake_train(argv: list[str]) -> int:
    """Write status.json and replay the recorded demo events into the run folder over ~2 s."""
    run_dir = Path(argv[argv.index("--run-dir") + 1])
    events = (HERE / "demo_events.jsonl").read_text().splitlines()
    total = json.loads(events[0]).get("total_steps")
    status = run_dir / "status.json"
    status.write_text(json.dumps({"pid": os.getpid(), "state": "running", "started": time.time(), "step": 0,
                                  "total_steps": total}))
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as handle:
        for i, line in enumerate(events):
            handle.write(line + "\n")
            handle.flush()
            if i % 40 == 0:
                time.sleep(0.2)
    status.write_text(json.dumps({"pid": os.getpid(), "state": "finished", "started": time.time(), "step": total,
                                  "total_steps": total}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
