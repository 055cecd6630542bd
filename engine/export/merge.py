"""The adapter merged into its base model: a plain Hugging Face folder (safetensors + config + tokenizer) for
runtimes that take no LoRA (vLLM, MLX, a later llama.cpp conversion of the whole model).

Which base: always the original full-precision checkpoint, also when the run trained on a 4-bit NF4 base.
Merging into dequantised NF4 weights would bake NF4's rounding error into every weight of a 16-bit model
(the error training saw, but one nobody asked to keep once the model is no longer 4-bit); the adapter's
update B@A is the same either way, and on the original weights it gives what the GGUF adapter gives on a
f16 base GGUF. The merge runs in float32 when that fits in free RAM (else in the checkpoint's own dtype, where
peft still computes B@A in float32 on CPU) and the result is saved in the checkpoint's own dtype.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grpo_studio.engine.common.errors import ExportError
from grpo_studio.engine.common.export_target import check_merged_target, write_merged_marker
from grpo_studio.engine.export.gguf_adapter import find_adapter, find_base_model

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass
class MergeResult:
    path: Path
    bytes: int
    dtype: str


def stored_dtype(config: dict) -> str:
    """The dtype the base checkpoint is saved in (config.json's dtype / torch_dtype), float32 if unknown."""
    text = config.get("text_config") or {}
    value = config.get("dtype") or config.get("torch_dtype") or text.get("dtype") or text.get("torch_dtype")
    return value if value in _BYTES else "float32"


def _fits_in_fp32(folder: Path, dtype: str) -> bool:
    import psutil

    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return weights * 4 / _BYTES[dtype] * 1.2 < psutil.virtual_memory().available


def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, *, base_dir: str | Path | None = None,
                  load_in_4bit: bool = False, force: bool = False,
                  log: Callable[[str], None] | None = None) -> MergeResult:
    """Merge the adapter into its full-precision base and save a Hugging Face folder at out_dir.
    `load_in_4bit` says the run trained on NF4 weights (only to tell the user which base is used); `force`
    lets an earlier merged model that GRPO Studio wrote at out_dir be replaced."""
    log = log or (lambda message: None)
    adapter_dir = find_adapter(adapter_dir)
    out_dir = Path(out_dir).expanduser()
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = find_base_model(adapter_config, base_dir)
    check_merged_target(out_dir, force, [base.folder, adapter_dir])
    if not any(base.folder.glob("*.safetensors")) and not any(base.folder.glob("*.bin")):
        raise ExportError(f"the base model's weights are not in {base.folder}",
                          f"download the full model (`hf download {base.name}`) or pass its folder with --base DIR")
    dtype = stored_dtype(base.config)
    if load_in_4bit:
        log("the run trained on a 4-bit NF4 base; merging into the original full-precision weights instead "
            "(dequantised NF4 would keep its rounding error in every weight)")
    work = "float32" if _fits_in_fp32(base.folder, dtype) else dtype
    log(f"loading {base.name} in {work} to merge (saved as {dtype})")

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=getattr(torch, work))
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model = model.to(getattr(torch, dtype))
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        log(f"writing merged model {out_dir}")
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        write_merged_marker(tmp)
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return MergeResult(out_dir, size, dtype)


def _replace_dir(new: Path, target: Path) -> None:
    """Put `new` at `target`; an earlier folder there is moved aside first and deleted after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
