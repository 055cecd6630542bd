"""GGUF in: a `.gguf` model file dequantized once into an HF folder that training loads like any other.

transformers reads GGUF (`from_pretrained(folder, gguf_file=name)`), dequantizing every tensor, but refuses
to save such a model; its state dict copied into a fresh model of the same config saves normally. The folder
goes into the cache of engine.common.gguf_cache, keyed by the file's SHA-256, written to a temp folder and
renamed, so a stopped conversion leaves nothing half-done behind. Before any weights load, the file's
architecture and tensor types are checked against what transformers and the gguf library can read, so an
unsupported file fails in a second with a message that says what would work.

Events: phase {phase: converting_gguf, gguf, stage: hashing | checking | dequantizing | saving},
progress {phase: converting_gguf, gguf, done_bytes, total_bytes, step: 0, total_steps, tokens_per_s: null}
while hashing, and a log line naming the GGUF and its hash once the folder is ready.
"""
from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from grpo_studio.engine.common import gguf_cache
from grpo_studio.engine.common.errors import ConfigError

Emit = Callable[..., dict]


@dataclass
class GgufInfo:
    path: str
    sha256: str
    bytes: int
    architecture: str
    name: str | None
    quant_types: list[str]


def inspect_gguf(path: Path) -> tuple[str, str | None, list[str]]:
    """(architecture, general.name, tensor types) from the file's header, or a clear error."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say so, not a traceback
        raise ConfigError(f"model: {path} is not a readable GGUF file ({type(exc).__name__}: {exc})",
                          "check that the download finished; re-download the file") from None

    def text(key: str) -> str | None:
        field = reader.fields.get(key)
        return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8", "replace")

    architecture = text("general.architecture") or "?"
    types = sorted({tensor.tensor_type.name for tensor in reader.tensors})
    return architecture, text("general.name"), types


def check_readable(path: Path, architecture: str, quant_types: list[str]) -> None:
    """Refuse architectures transformers cannot map and tensor types the gguf library cannot dequantize."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ConfigError(f"model: {path.name} is a {architecture!r} model, an architecture transformers cannot "
                          "read from GGUF", f"supported: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}; or "
                          "use the model's original (safetensors) release: a hub id or a folder")
    unreadable = []
    for name in quant_types:
        qtype = GGMLQuantizationType[name]
        block, size = GGML_QUANT_SIZES[qtype]
        try:  # one block of zeros: the cheapest way to ask whether this type can be dequantized
            dequantize(np.zeros((1, size), dtype=np.uint8), qtype)
        except (NotImplementedError, ValueError):
            unreadable.append(name)
    if unreadable:
        raise ConfigError(f"model: {path.name} holds tensors of type {', '.join(unreadable)}, which the gguf "
                          "library cannot dequantize", "use a Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16, "
                          "BF16 or F32 file of the same model (most repos offer several)")


def ensure_converted(path: Path, emit: Emit | None = None, total_steps: int = 0) -> Path:
    """The HF folder of this GGUF file, converting it first when it is not in the cache yet."""
    path = Path(path).expanduser().resolve()
    emit = emit or (lambda *args, **kwargs: {})
    if not path.is_file():
        raise ConfigError(f"model: GGUF file not found: {path}", "check the path")
    shown = str(path)

    def hashing(done: int, total: int) -> None:
        emit("progress", phase="converting_gguf", gguf=shown, done_bytes=done, total_bytes=total, step=0, eta_s=None,
             total_steps=total_steps, tokens_per_s=None)

    emit("phase", phase="converting_gguf", gguf=shown, stage="hashing")
    sha = gguf_cache.file_sha256(path, hashing)
    folder = gguf_cache.folder_for(sha)
    if gguf_cache.converted_folder(path) is None:
        emit("phase", phase="converting_gguf", gguf=shown, stage="checking")
        architecture, name, types = inspect_gguf(path)
        check_readable(path, architecture, types)
        info = GgufInfo(shown, sha, path.stat().st_size, architecture, name, types)
        _convert(path, folder, info, emit)
    emit("log", level="info", message=f"model: {path.name} (sha256 {sha[:16]}...), dequantized into {folder}")
    return folder


def _convert(path: Path, folder: Path, info: GgufInfo, emit: Emit) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    emit("phase", phase="converting_gguf", gguf=info.path, stage="dequantizing")
    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except (ValueError, NotImplementedError, KeyError, OSError) as exc:
        raise ConfigError(f"model: transformers could not read {path.name}: {exc}",
                          "use the model's original (safetensors) release, or another quantization of it") from None
    emit("phase", phase="converting_gguf", gguf=info.path, stage="saving")
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the GGUF marker: a model carrying it refuses to save
        del config.quantization_config
    with torch.device("meta"):  # no second copy of the weights: the fresh model takes the loaded tensors
        fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict(), assign=True)
    del loaded
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fresh.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    source = {**asdict(info), "converted_in_s": round(time.monotonic() - started, 1)}
    (tmp / gguf_cache.SOURCE_FILE).write_text(json.dumps(source, indent=1), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier attempt
    tmp.replace(folder)


def hub_gguf_file(repo_id: str, filename: str, emit: Emit | None = None) -> Path:
    """A GGUF file of a hub repo (`model: owner/name` + `gguf_file:`), downloaded into the HF cache once."""
    from huggingface_hub import hf_hub_download

    from grpo_studio.engine.common.sources import hub_cache_dir

    if emit:
        emit("phase", phase="downloading", what="model", repo_id=repo_id, files=1, total_bytes=None,
             missing_bytes=None)
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=hub_cache_dir()))
    except Exception as exc:  # noqa: BLE001 - not found, offline, gated: all end in the same advice
        raise ConfigError(f"model: could not get {filename} from {repo_id} ({type(exc).__name__}: {exc})",
                          "check gguf_file against the repo's file list, your network, or HF_TOKEN") from None
