"""A model's architecture essentials (its config.json) without torch, transformers or a download if avoidable.

`load_model_config(model)` tries, in order: the demo model, a local folder or config.json, the Hugging Face
cache (read straight from its documented folder layout, so the GUI never pays for importing huggingface_hub),
the offline table in resources/architectures.json, and — only when online and HF_HUB_OFFLINE is unset —
a download of config.json alone. It returns one flat dict of the fields the estimator needs.
"""
from __future__ import annotations

import functools
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from grpo_studio.engine.common.config import DEMO
from grpo_studio.engine.common.errors import ConfigError

# The fields every estimate needs; the rest are derived (head_dim, kv heads) or defaulted.
REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
ESSENTIALS = REQUIRED + ("num_key_value_heads", "head_dim", "tie_word_embeddings", "model_type",
                         "max_position_embeddings")

# The demo model's shape, used when its config.json has not been generated yet (a Llama-style model with a
# character vocabulary; see resources/demo/model/).
DEMO_FALLBACK = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 16, "vocab_size": 24,
                 "tie_word_embeddings": True, "max_position_embeddings": 1024}

# Name parts that do not change the architecture: chat/instruct tunes and quantised re-uploads.
_ANYWHERE = ("-instruct", "-chat")
_SUFFIXES = ("-it", "-base", "-hf", "-bnb-4bit", "-unsloth", "-4bit", "-8bit", "-awq", "-gptq", "-gguf",
             "-fp8", "-int4", "-int8", "-2507")
_OFF = {"1", "true", "yes", "on"}


def load_model_config(model: str) -> dict:
    """The architecture essentials of `model` ("demo", a folder, a config.json, or a hub id).

    Returns a dict with ESSENTIALS plus `name` and `source` (demo | local | hf_cache | table | download).
    Raises ConfigError (with a hint) when the model cannot be found or is not a decoder-only LM config.
    """
    model = str(model).strip()
    if not model:
        raise ConfigError("no model given", "pass a hub id (e.g. Qwen/Qwen2.5-1.5B-Instruct), a folder or 'demo'")
    if model == DEMO:
        return _normalise(_demo_config(), DEMO, "demo")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} has no config.json", "point at a model folder saved by transformers")
        return _normalise(_read_json(path / "config.json"), str(path), "local")
    if model.lower().endswith(".gguf"):
        return _normalise(_gguf_config(path, model), str(path), "gguf")
    if path.is_file():
        return _normalise(_read_json(path), str(path), "local")
    if _looks_like_path(model):
        raise ConfigError(f"model path not found: {model} (taken for a local path: it is not a hub id of the "
                          "form owner/name)", "check the folder, or give a hub id such as meta-llama/Llama-3.1-8B")
    cached = _from_hf_cache(model)
    if cached is not None:
        return _normalise(_read_json(cached), model, "hf_cache")
    entry = table_lookup(model)
    if entry is not None:
        return _normalise(entry, model, "table")
    if not _offline():
        return _normalise(_read_json(_download(model)), model, "download")
    raise ConfigError(f"unknown model '{model}': not a local folder, not in the Hugging Face cache and not in "
                      "the offline table", f"download it (`grpo-studio download {model}`), pass its folder or "
                      "config.json, or unset HF_HUB_OFFLINE")


# ----------------------------------------------------------------------------------------------- sources
def _gguf_config(path: Path, model: str) -> dict:
    """The real-model starter's known shape (downloaded or not); else the config.json of the file's converted
    folder, or its header (reading a header parses the whole vocabulary: seconds, hence the other two first)."""
    from grpo_studio.engine.common import gguf_cache
    from grpo_studio.engine.common.real_starter import SMOLLM2_CONFIG, is_starter_model

    if is_starter_model(model):
        return dict(SMOLLM2_CONFIG)
    if path.is_file():
        converted = gguf_cache.converted_folder(path)
        if converted is not None:
            return _read_json(converted / "config.json")
        try:
            return gguf_cache.gguf_essentials(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a readable GGUF file ({exc})",
                              "check that the download finished") from exc
    raise ConfigError(f"GGUF file not found: {model}", "check the path")


def _demo_config() -> dict:
    try:
        text = (resources.files("grpo_studio.resources") / "demo" / "model" / "config.json").read_text("utf-8")
    except (FileNotFoundError, NotADirectoryError, ModuleNotFoundError):
        return dict(DEMO_FALLBACK)
    return json.loads(text)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", "is it a transformers config.json?") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object", "is it a transformers config.json?")
    return data


def _looks_like_path(model: str) -> bool:
    """engine.sources' rule without importing huggingface_hub (the estimator stays instant): file names
    and paths are paths, `owner/name` with dots is a hub id; huggingface_hub validates it if it gets asked."""
    from grpo_studio.engine.common.sources import FILE_SUFFIXES

    return model.startswith((".", "/", "~")) or model.lower().endswith(FILE_SUFFIXES) or model.count("/") > 1 \
        or os.sep in model.replace("/", "")


def _hub_cache_dir() -> Path:
    # The same precedence huggingface_hub documents: HF_HUB_CACHE, then HF_HOME/hub, then ~/.cache.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _from_hf_cache(repo_id: str) -> Path | None:
    """config.json of `repo_id` in the HF cache (models--org--name/snapshots/<rev>/), newest ref first."""
    if repo_id.count("/") != 1:
        return None
    repo = _hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    if not repo.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = repo / "snapshots" / ref.read_text(encoding="utf-8").strip() / "config.json"
        if candidate.is_file():
            return candidate
    snapshots = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return snapshots[0] if snapshots else None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _OFF


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download  # only here: importing it costs ~0.1 s
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ConfigError("huggingface_hub is not installed", "pip install huggingface-hub") from exc
    try:
        return Path(hf_hub_download(repo_id, "config.json"))
    except Exception as exc:  # noqa: BLE001 - network, auth, missing repo: all one message for the user
        from grpo_studio.engine.common.hub_errors import translate_error
        from grpo_studio.engine.common.sources import Source

        reason = translate_error(Source(repo_id, "hub", "model", repo_id=repo_id), exc)
        raise ConfigError(f"could not fetch config.json of '{repo_id}': {reason.message}", reason.hint) from exc


# ----------------------------------------------------------------------------------------- offline table
def normalise_name(model: str) -> str:
    """'unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit' -> 'qwen2.5-1.5b': the key of the offline table."""
    name = model.strip().rstrip("/").split("/")[-1].lower()
    for part in _ANYWHERE:
        name = name.replace(part, "")
    changed = True
    while changed:
        changed = False
        for suffix in _SUFFIXES:
            if name.endswith(suffix):
                name, changed = name[: -len(suffix)], True
    return re.sub(r"^meta-(?=llama)", "", name)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict]:
    text = (resources.files("grpo_studio.resources") / "architectures.json").read_text("utf-8")
    by_name: dict[str, dict] = {}
    for entry in json.loads(text)["models"]:
        for name in entry["names"] + [entry["hub_id"].lower(), normalise_name(entry["hub_id"])]:
            by_name[name] = entry
    return by_name


def table_lookup(model: str) -> dict | None:
    """A copy of the offline table's config for `model` (case-insensitive, org and tune suffixes ignored)."""
    table = _table()
    entry = table.get(model.strip().lower()) or table.get(normalise_name(model))
    return dict(entry["config"], hub_id=entry["hub_id"]) if entry else None


def table_names() -> list[str]:
    return sorted({entry["hub_id"] for entry in _table().values()})


# ----------------------------------------------------------------------------------------- normalising
def _normalise(raw: dict, name: str, source: str) -> dict:
    """Flatten a config.json into ESSENTIALS; multimodal configs keep their LM in `text_config` (Gemma 3)."""
    data = dict(raw)
    text = data.get("text_config")
    if isinstance(text, dict):
        data = {**{k: v for k, v in data.items() if k != "text_config"}, **text}
    missing = [key for key in REQUIRED if not isinstance(value := data.get(key), int) or value <= 0]
    if missing:
        raise ConfigError(f"{name}: config.json lacks {', '.join(missing)}",
                          "the estimator understands decoder-only transformers configs (Llama, Qwen, Mistral, "
                          "Gemma, Phi, ...)")
    heads = data["num_attention_heads"]
    model_type = str(data.get("model_type") or "unknown")
    out: dict[str, Any] = {key: data[key] for key in REQUIRED}
    out["num_key_value_heads"] = int(data.get("num_key_value_heads") or heads)
    out["head_dim"] = int(data.get("head_dim") or data["hidden_size"] // heads)
    # transformers' Gemma classes tie by default; the Llama-style ones do not.
    out["tie_word_embeddings"] = bool(data.get("tie_word_embeddings", model_type.startswith("gemma")))
    out["model_type"] = model_type
    out["max_position_embeddings"] = int(data.get("max_position_embeddings") or 0) or None
    out["attention_bias"] = bool(data.get("attention_bias", model_type == "qwen2"))
    out["name"] = name
    out["source"] = source
    return out
