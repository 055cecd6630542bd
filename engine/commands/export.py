"""`grpo-studio export`: the adapter as GGUF for llama.cpp / Ollama, an Ollama Modelfile, a merged HF model.

With --json every line is one JSON object (the GUI's Export page reads them):
{"type": "log", "message"} ..., then {"type": "result", "files": [{"path", "kind", "bytes"}], "ollama_command"}
or {"type": "error", "kind", "message", "hint"} with a nonzero exit code.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grpo_studio.engine.common.errors import StudioError

NAME = "export"
HELP = "export a run's LoRA adapter: GGUF for llama.cpp / Ollama (+ Modelfile), or a merged Hugging Face model"
ORDER = 60
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="RUN|ADAPTER_DIR", help="a run (its name, as `grpo-studio runs` lists it, "
                                                                "or its folder), a checkpoint or an adapter folder")
    parser.add_argument("--gguf", metavar="OUT.gguf",
                        help="GGUF adapter file (default: RUN/exports/adapter-OUTTYPE.gguf)")
    parser.add_argument("--outtype", choices=OUTTYPES, default="f16",
                        help="tensor type in the GGUF (default f16; q8_0 falls back to f16 per tensor)")
    parser.add_argument("--ollama", metavar="BASE.gguf",
                        help="also write an Ollama Modelfile over this base model GGUF (or an Ollama model name)")
    parser.add_argument("--merged", metavar="OUT_DIR", help="also write the merged model as a Hugging Face folder")
    parser.add_argument("--base", metavar="DIR", help="the base model's folder, when the adapter's own reference "
                                                      "to it is not on this machine")
    parser.add_argument("--force", action="store_true", help="replace an existing GGUF / Modelfile, or a merged "
                                                             "model an earlier export wrote (never a link, a device "
                                                             "or a folder with other files)")
    parser.add_argument("--json", action="store_true", help="print JSON lines (for the app)")


def json_lines(args: argparse.Namespace, body: Callable[[Callable[[dict], None]], int]) -> int:
    """Run body(emit) printing each message as one JSON line (with --json) or as text; errors become an
    `error` line and the error's exit code. Without --json, errors go to the CLI's usual handling."""
    def emit(message: dict) -> None:
        if args.json:
            print(json.dumps(message), flush=True)
        elif message["type"] == "log":
            print(message["message"], file=sys.stderr, flush=True)
        elif message["type"] == "token":
            print(message["text"], end="", flush=True)

    if not args.json:
        return body(emit)
    from grpo_studio.engine.common.errors import EXIT_CODES, StudioError

    try:
        return body(emit)
    except StudioError as error:
        emit({"type": "error", "kind": error.kind, "message": error.message, "hint": error.hint})
        return error.exit_code
    except Exception as error:  # noqa: BLE001 - the app must get a JSON line, not a traceback
        emit({"type": "error", "kind": "crash", "message": f"{type(error).__name__}: {error}",
              "hint": "this is a bug in GRPO Studio; run the same command without --json to see the traceback"})
        return EXIT_CODES["crash"]


def _ollama_base(value: str, base_name: str, base_folder: Path) -> str:
    """A base GGUF file (must exist) or an Ollama model name (e.g. qwen2.5:0.5b-instruct)."""
    from grpo_studio.engine.common.errors import ExportError
    from grpo_studio.engine.export.modelfile import base_gguf_hint

    path = Path(value).expanduser()
    if path.is_file():
        return str(path.resolve())
    if value.endswith(".gguf") or "/" in value or "\\" in value:
        raise ExportError(f"base model GGUF not found: {value}", base_gguf_hint(base_name, base_folder))
    return value


def _trained_gguf(base_name: str) -> str | None:
    """The GGUF file the run trained from (`model: x.gguf`): the adapter applies to it as it is, so the
    Modelfile names it without asking (None for other bases)."""
    path = Path(base_name)
    return str(path) if base_name.lower().endswith(".gguf") and path.is_file() else None


def _source(path_or_name: str) -> Path:
    """A path as given, else a run name (or unique prefix) under the runs folder, as attach / stop resolve it."""
    path = Path(path_or_name).expanduser()
    if path.exists():
        return path
    from grpo_studio.engine.common.runs import resolve_run

    return resolve_run(path_or_name)


def writing_error(error: OSError) -> StudioError | None:
    """An OSError while writing the export as what the user can act on (a full disk, a folder they cannot
    write to), or None for anything else."""
    import errno

    from grpo_studio.engine.common.disk import as_disk_full
    from grpo_studio.engine.common.errors import ExportError

    where = Path(error.filename).parent if error.filename else Path.cwd()
    full = as_disk_full(error, where, "writing the export")
    if full is not None:
        return full
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "read-only file system" if error.errno == errno.EROFS else "permission denied"
        return ExportError(f"cannot write {error.filename or 'the export'}: {reason}",
                           "choose a folder you can write to (--gguf OUT.gguf, --merged DIR)")
    return None


def export(args: argparse.Namespace, emit: Callable[[dict], None]) -> int:
    try:
        return _export(args, emit)
    except OSError as error:
        studio_error = writing_error(error)
        if studio_error is None:
            raise
        raise studio_error from None


def _export(args: argparse.Namespace, emit: Callable[[dict], None]) -> int:
    from grpo_studio.engine.export.gguf_adapter import find_adapter, find_base_model, find_run_dir, read_adapter_config

    adapter_dir = find_adapter(_source(args.path))
    run_dir = find_run_dir(adapter_dir)
    config = None
    if run_dir is not None:
        from grpo_studio.engine.chat.answers import run_config

        config = run_config(run_dir, emit)
    log = lambda message: emit({"type": "log", "message": message})  # noqa: E731
    files: list[dict] = []
    command = None
    want_gguf = bool(args.gguf or args.ollama or not args.merged)
    if args.merged:  # refused before the GGUF is written, not after
        from grpo_studio.engine.common.export_target import check_merged_target

        base = find_base_model(read_adapter_config(adapter_dir), args.base)
        check_merged_target(Path(args.merged).expanduser(), args.force, [base.folder, adapter_dir])
    if want_gguf:
        from grpo_studio.engine.export.gguf_adapter import export_gguf

        out = Path(args.gguf) if args.gguf else (run_dir or adapter_dir) / "exports" / f"adapter-{args.outtype}.gguf"
        adapter_config = read_adapter_config(adapter_dir)
        base = find_base_model(adapter_config, args.base)
        ollama_base = (_ollama_base(args.ollama, base.name, base.folder) if args.ollama
                       else _trained_gguf(base.name))
        if ollama_base:  # refused before the GGUF is written, not after
            from grpo_studio.engine.common.export_target import check_file_target

            check_file_target(out.expanduser().parent / "Modelfile", args.force)
        result = export_gguf(adapter_dir, out, args.outtype, base_dir=args.base, force=args.force, log=log)
        files.append({"path": str(result.path.resolve()), "kind": "gguf", "bytes": result.bytes})
        from grpo_studio.engine.export.modelfile import base_gguf_hint, ollama_command, ollama_name, write_modelfile

        if ollama_base:
            modelfile = write_modelfile(result.path.parent / "Modelfile", ollama_base, result.path, base.folder,
                                        config)
            files.append({"path": str(modelfile.resolve()), "kind": "modelfile", "bytes": modelfile.stat().st_size})
            command = ollama_command(ollama_name((run_dir or adapter_dir).name), modelfile.resolve())
            log(f"for Ollama: {command}")
        else:
            log("for Ollama: " + base_gguf_hint(base.name, base.folder))
    if args.merged:
        from grpo_studio.engine.export.merge import merge_adapter

        merged = merge_adapter(adapter_dir, args.merged, base_dir=args.base,
                               load_in_4bit=bool(config and config.load_in_4bit), force=args.force, log=log)
        files.append({"path": str(merged.path.resolve()), "kind": "merged", "bytes": merged.bytes})
    emit({"type": "result", "files": files, "ollama_command": command})
    if not args.json:
        for item in files:
            size = item["bytes"]
            shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"
            print(f"wrote {item['kind']}: {item['path']} ({shown})")
        if command:
            print(command)
    return 0


def run(args: argparse.Namespace) -> int:
    return json_lines(args, lambda emit: export(args, emit))
