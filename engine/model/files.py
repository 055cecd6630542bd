"""Telling a damaged model folder from a bug: which file is broken, said plainly.

A truncated model.safetensors (an interrupted copy or download) or a hand-edited config.json that is no
longer JSON make transformers raise errors that look like crashes. Before a load failure is reported, the
folder's JSON files and safetensors headers are checked; the first broken one is named.
"""
from __future__ import annotations

import json
from pathlib import Path

from grpo_studio.engine.common.errors import ConfigError

JSON_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json")


def damaged_file(folder: Path) -> tuple[Path, str] | None:
    """(file, what is wrong) for the first damaged file in a model folder; None when all read back."""
    candidates = [folder / name for name in JSON_FILES] + sorted(folder.glob("*.safetensors.index.json"))
    for path in candidates:
        if not path.is_file():
            continue
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return path, f"not valid JSON ({exc})"
    from safetensors import safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())
                if names:  # the header can be whole while the data is cut: the last tensor ends the file
                    handle.get_slice(names[-1])
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type
            return path, f"unreadable ({exc})"
    return None


def load_error(folder: Path, error: BaseException) -> ConfigError:
    """The ConfigError for a failed tokenizer/model load from `folder`: names a damaged file when there is one."""
    found = damaged_file(folder)
    if found is not None:
        path, problem = found
        return ConfigError(f"model: {path} is damaged: {problem}",
                           "copy or download the model again (an interrupted transfer leaves files cut short; "
                           f"`hf download` resumes), or restore {path.name} from a good copy")
    return ConfigError(f"model: could not load {folder}: {type(error).__name__}: {error}",
                       "check that the folder holds a causal language model (config.json + weights)")
