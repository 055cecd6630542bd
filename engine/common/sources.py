"""What a model or dataset name means: the demo, a local path, or a Hugging Face Hub repo id. Torch-free.

One rule for every command and the GUI: an existing local path wins; otherwise a name that is a valid hub
repo id by huggingface_hub's own validation (`owner/name`; dots, dashes and underscores allowed, so
`Qwen/Qwen2.5-0.5B-Instruct` is one) is a hub id; anything else is a path that does not exist. Errors say
which of the two a name was taken for, so a typo in a folder is never reported as a missing hub repo.

    source = resolve_name("Qwen/Qwen2.5-0.5B-Instruct")         # Source(kind="hub", repo_id=...)
    folder = cached_snapshot(source)                            # its snapshot folder, or None
    folder = local_model_folder("Qwen/Qwen2.5-0.5B-Instruct")   # the same, or a clear error (never downloads)
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from grpo_studio.engine.common.config import DEMO
from grpo_studio.engine.common.errors import ConfigError, DataError, StudioError

# Names ending like this are files, never hub repos (a repo id may contain dots: `Qwen2.5-0.5B`).
FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".yaml", ".yml", ".gguf", ".safetensors", ".bin",
                 ".txt", ".py")

# The files a training run reads from a model repo: config, tokenizer, generation config, safetensors weights.
# Weights in sub-folders (original/, onnx/, gguf/ ...) and other formats are duplicates a run never reads.
MODEL_FILES = ("*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "merges.txt", "vocab.txt",
               "*.jinja")
MODEL_SKIP = ("consolidated*.safetensors",)  # Mistral's single-file duplicate of the sharded weights
MODEL_FILES_BIN = ("pytorch_model*.bin",)  # only for a repo that has no safetensors at all
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class Source:
    name: str  # as the user gave it
    kind: str  # demo | local | hub
    what: str  # model | dataset
    path: Path | None = None  # kind == local
    repo_id: str | None = None  # kind == hub
    subset: str | None = None  # datasets: `owner/name:subset`

    @property
    def hub_id(self) -> str:
        """repo_id, for a source of kind hub (where it is always set)."""
        assert self.repo_id is not None, f"{self.name} is not a Hub source"
        return self.repo_id

    @property
    def folder(self) -> Path:
        """path, for a source of kind local (where it is always set)."""
        assert self.path is not None, f"{self.name} is not a local source"
        return self.path

    @property
    def repo_type(self) -> str:
        return "dataset" if self.what == "dataset" else "model"

    @property
    def page_url(self) -> str:
        """The repo's page on the Hub (or the HF_ENDPOINT mirror)."""
        prefix = "datasets/" if self.what == "dataset" else ""
        return f"{hub_endpoint()}/{prefix}{self.repo_id}"


def _error(what: str, message: str, hint: str) -> StudioError:
    return DataError(message, hint) if what == "dataset" else ConfigError(message, hint)


def is_hub_id(name: str) -> bool:
    """`owner/name` that huggingface_hub itself accepts as a repo id."""
    if name.count("/") != 1 or name.lower().endswith(FILE_SUFFIXES):
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def resolve_name(name: str, what: str = "model") -> Source:
    """The demo, an existing local path, or a hub repo id; a clear error for anything else."""
    name = str(name).strip()
    if not name:
        raise _error(what, f"no {what} given", f"give a local path or a hub id such as {_example(what)}")
    if name == DEMO:
        return Source(name, "demo", what)
    path = Path(name).expanduser()
    if path.exists():
        return Source(name, "local", what, path=path.resolve())
    repo, subset = (name.partition(":")[::2]) if what == "dataset" else (name, "")
    if is_hub_id(repo):
        return Source(name, "hub", what, repo_id=repo, subset=subset or None)
    raise _error(what, f"{what} not found: {name} (taken for a local path, since it is not a hub id of the "
                       f"form owner/name; nothing is at {path})",
                 f"check the path, or give a hub id such as {_example(what)}")


def _example(what: str) -> str:
    return "openai/gsm8k" if what == "dataset" else "Qwen/Qwen2.5-0.5B-Instruct"


# ----------------------------------------------------------------------------------------------- the cache
# huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE (HF_HOME) and HF_HUB_OFFLINE once, into its constants;
# asking the constants keeps this module and every huggingface_hub call in agreement.
def hub_endpoint() -> str:
    """HF_ENDPOINT (a mirror) or the Hub."""
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def hub_cache_dir() -> Path:
    """The standard Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def hub_offline() -> bool:
    """HF_HUB_OFFLINE: air-gapped use, the cache only."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def wanted_files(source: Source, files: list[str]) -> list[str]:
    """The files of a repo listing that a run needs (see MODEL_FILES); datasets: the data files (of the subset)."""
    if source.what == "dataset":
        picked = [f for f in files if f.lower().endswith(DATA_SUFFIXES) or f == "README.md"]
        if source.subset:
            picked = [f for f in picked if f.split("/", 1)[0] == source.subset or f == "README.md"]
        return picked
    top = [f for f in files if "/" not in f]
    picked = [f for f in top if any(fnmatch.fnmatch(f, p) for p in MODEL_FILES)
              and not any(fnmatch.fnmatch(f, p) for p in MODEL_SKIP)]
    if not any(f.endswith(".safetensors") for f in picked):
        picked += [f for f in top if any(fnmatch.fnmatch(f, p) for p in MODEL_FILES_BIN)]
    return picked


def cached_snapshot(source: Source, revision: str | None = None) -> Path | None:
    """The complete cached snapshot folder of a hub repo, or None (never touches the network).

    huggingface_hub checks completeness against the file list it cached while downloading; a model folder
    also needs its config.json and every weight shard, whoever downloaded it."""
    from huggingface_hub import snapshot_download

    if source.what == "dataset":
        allow = [f"{source.subset}/*"] if source.subset else ["*" + suffix for suffix in DATA_SUFFIXES]
        ignore = None
    else:  # the same selection as wanted_files, as huggingface_hub's (fnmatch) patterns
        allow, ignore = list(MODEL_FILES), ["*/*", *MODEL_SKIP]
    try:
        folder = Path(snapshot_download(source.hub_id, repo_type=source.repo_type, revision=revision,
                                        cache_dir=hub_cache_dir(), local_files_only=True,
                                        allow_patterns=allow, ignore_patterns=ignore))
    except Exception:  # noqa: BLE001 - LocalEntryNotFoundError, an incomplete snapshot, a bad revision: not cached
        return None
    if source.what == "model" and not model_folder_complete(folder):
        return None
    if source.what == "dataset" and not any(p.suffix.lower() in DATA_SUFFIXES for p in folder.rglob("*")):
        return None
    return folder


def model_folder_complete(folder: Path) -> bool:
    """config.json, a tokenizer and all weights (every shard an index lists) are there."""
    import json

    if not (folder / "config.json").is_file():
        return False
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return False
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            try:
                shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError):
                return False
            return all((folder / shard).is_file() for shard in shards)
    return (folder / "model.safetensors").is_file() or (folder / "pytorch_model.bin").is_file()


def local_gguf_file(name: str, gguf_file: str | None = None) -> Path | None:
    """The GGUF file a model name means on this machine: a `.gguf` path, or `gguf_file` inside a local folder
    or inside a cached hub repo; None when the model is not a GGUF (or the hub file is not cached yet)."""
    from grpo_studio.engine.common.gguf_cache import is_gguf

    if not gguf_file:
        path = Path(str(name).strip()).expanduser()
        return path.resolve() if is_gguf(name) and path.is_file() else None
    source = resolve_name(name, "model")
    if source.kind == "local":
        return (source.folder / gguf_file) if (source.folder / gguf_file).is_file() else None
    if source.kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source.hub_id, gguf_file, cache_dir=hub_cache_dir())
        return Path(found) if isinstance(found, str) else None
    return None


def local_model_folder(name: str, gguf_file: str | None = None) -> Path:
    """A model's folder on this machine (demo, local folder, or a cached hub id); never downloads.
    A GGUF model (a `.gguf` path, or `gguf_file` in a folder or hub repo) means its dequantized folder."""
    if gguf_file or str(name).lower().endswith(".gguf"):
        return _converted_gguf_folder(name, gguf_file)
    source = resolve_name(name, "model")
    if source.kind == "demo":
        from grpo_studio.engine.common.demo import demo_model_dir

        return demo_model_dir()
    if source.kind == "local":
        if not source.folder.is_dir() or not (source.folder / "config.json").is_file():
            raise ConfigError(f"model: {source.folder} is not a model folder (no config.json)",
                              "point at a folder saved with save_pretrained (config.json + weights)")
        return source.folder
    folder = cached_snapshot(source)
    if folder is None:
        raise ConfigError(f"model: {name} was taken for a hub id, and it is not (completely) in the Hugging Face "
                          f"cache at {hub_cache_dir()}",
                          f"download it with `grpo-studio download {name}` (a training run downloads it itself), "
                          "or give a local folder")
    return folder


def _converted_gguf_folder(name: str, gguf_file: str | None) -> Path:
    from grpo_studio.engine.common.gguf_cache import converted_folder

    path = local_gguf_file(name, gguf_file)
    shown = f"{name} ({gguf_file})" if gguf_file else name
    if path is None:
        raise ConfigError(f"model: GGUF file not found: {shown}",
                          "check the path (and gguf_file); a hub repo's GGUF is downloaded by a training run")
    folder = converted_folder(path)
    if folder is None:
        raise ConfigError(f"model: {shown} has not been dequantized yet",
                          "start a training run with it: the run converts it once (a minute for a small model)")
    return folder
