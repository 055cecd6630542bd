"""Where a GGUF model's dequantized HF folder lives, and whether it is there yet. Torch-free.

A `.gguf` file (what Ollama and LM Studio keep) is dequantized once into an HF folder (engine.hub.gguf_import)
under `grpo-studio-gguf/` next to the Hugging Face hub cache, named after the file's SHA-256: the same file
under another name or path reuses it, a changed file gets a new folder. Hashing a 5 GB file takes a while,
so the hash of a path is remembered per (size, modification time) in `hashes.json`.

    folder = converted_folder(Path("model.Q4_K_M.gguf"))   # the HF folder, or None before the conversion
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from grpo_studio.engine.common.runs import atomic_write_text

SOURCE_FILE = "gguf_source.json"  # in a converted folder: which GGUF it came from (path, sha256, bytes)
CHUNK = 8 << 20


def cache_root() -> Path:
    """`grpo-studio-gguf/` beside the hub cache (HF_HUB_CACHE / HF_HOME are respected)."""
    from grpo_studio.engine.common.sources import hub_cache_dir

    return hub_cache_dir().parent / "grpo-studio-gguf"


def is_gguf(name: str | Path) -> bool:
    return str(name).lower().endswith(".gguf")


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _known_hashes() -> dict:
    try:
        return json.loads((cache_root() / "hashes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def file_sha256(path: Path, on_progress: Callable[[int, int], None] | None = None) -> str:
    """The file's SHA-256 (remembered for its size and mtime); `on_progress(done_bytes, total_bytes)`."""
    path = Path(path)
    key = _stat_key(path)
    known = _known_hashes()
    if key in known:
        return known[key]
    digest, total, done = hashlib.sha256(), path.stat().st_size, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    sha = digest.hexdigest()
    known[key] = sha
    try:
        cache_root().mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_root() / "hashes.json", json.dumps(known, indent=1))
    except OSError:  # a read-only cache only costs hashing again next time
        pass
    return sha


def folder_for(sha256: str) -> Path:
    return cache_root() / sha256[:32]


def converted_folder(path: Path) -> Path | None:
    """The complete HF folder of this GGUF file, or None when it has not been converted yet."""
    folder = folder_for(file_sha256(Path(path)))
    from grpo_studio.engine.common.sources import model_folder_complete

    return folder if (folder / SOURCE_FILE).is_file() and model_folder_complete(folder) else None


def converted_folder_of_missing(path: Path) -> Path | None:
    """The converted folder of a GGUF file that is no longer where a run found it (moved, deleted, its package
    uninstalled): by the hash remembered for that path, when the folder is complete. None otherwise."""
    from grpo_studio.engine.common.sources import model_folder_complete

    where = f"{Path(path).expanduser().absolute()}|"
    for key, sha in reversed(list(_known_hashes().items())):  # the newest record of that path first
        folder = folder_for(sha)
        if key.startswith(where) and (folder / SOURCE_FILE).is_file() and model_folder_complete(folder):
            return folder
    return None


def gguf_source(folder: Path) -> dict | None:
    """What a converted folder records about its GGUF: {path, sha256, bytes, architecture, quant_types}."""
    try:
        return json.loads((Path(folder) / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def gguf_essentials(path: Path) -> dict:
    """A GGUF file's architecture as config.json names it (for the estimate), read from its header only."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(key: str):
        field = reader.fields.get(key)
        return None if field is None else field.contents()

    arch = value("general.architecture") or "unknown"
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return {"model_type": arch, "hidden_size": value(f"{arch}.embedding_length"),
            "intermediate_size": value(f"{arch}.feed_forward_length"),
            "num_hidden_layers": value(f"{arch}.block_count"),
            "num_attention_heads": value(f"{arch}.attention.head_count"),
            "num_key_value_heads": value(f"{arch}.attention.head_count_kv"),
            "max_position_embeddings": value(f"{arch}.context_length"),
            "vocab_size": len(tokens.data) if tokens is not None else value(f"{arch}.vocab_size"),
            "tie_word_embeddings": all(t.name != "output.weight" for t in reader.tensors)}
