"""A PEFT LoRA adapter -> a GGUF LoRA adapter that llama.cpp and Ollama load, in pure Python (gguf package).

What llama.cpp reads (llama-adapter.cpp, facts): `general.type = adapter`, `adapter.type = lora`,
`general.architecture` equal to the base model's, `adapter.lora.alpha` (float32), and per base tensor a pair
`<name>.lora_a` with numpy shape (rank, in) and `<name>.lora_b` with shape (out, rank) — the gguf writer
stores numpy shapes reversed as ggml `ne`, so lora_a.ne = [in, rank], lora_b.ne = [rank, out], and llama.cpp
checks a.ne[0] == W.ne[0], b.ne[1] == W.ne[1]. At run time it adds `scale * B @ A` with
scale = alpha / rank, rank = lora_b.ne[0] per tensor (alpha 0 means scale 1).

One file-wide alpha cannot express rsLoRA (alpha / sqrt(r)) with mixed ranks or peft's per-module
rank_pattern / alpha_pattern, so the alpha most modules need is written and, for every other module, the
ratio between peft's scale and llama.cpp's is folded into lora_b. The result is exact for every module.
Everything is checked before the file is opened; the file is written beside the target and renamed.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

from grpo_studio.engine.common.errors import ExportError
from grpo_studio.engine.common.export_target import check_file_target
from grpo_studio.engine.common.gguf_cache import converted_folder_of_missing, is_gguf
from grpo_studio.engine.export.gguf_names import ArchInfo, TensorNames, arch_info, permute_heads, permute_rows

Q = gguf.GGMLQuantizationType
OUTTYPES: dict[str, tuple[Q, gguf.LlamaFileType]] = {
    "f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?P<part>lora_A|lora_B)(?:\.[^.]+)?\.weight$")


@dataclass
class LoraPair:
    module: str  # name in the base model, e.g. model.layers.0.self_attn.q_proj
    a: np.ndarray  # (rank, in), float32
    b: np.ndarray  # (out, rank), float32
    scale: float  # peft's scaling for this module

    @property
    def rank(self) -> int:
        return self.a.shape[0]


@dataclass
class BaseModel:
    name: str  # what adapter_config.json calls it: a hub id or a folder
    folder: Path  # where its config.json (and tokenizer) are
    config: dict

    @property
    def is_hub_id(self) -> bool:
        return self.name.count("/") == 1 and not Path(self.name).expanduser().exists()


@dataclass
class ExportResult:
    path: Path
    bytes: int
    arch: str
    alpha: float
    tensors: int
    folded: list[str] = field(default_factory=list)  # modules whose scale went into lora_b
    f16_fallback: list[str] = field(default_factory=list)  # tensors q8_0 could not hold


# --------------------------------------------------------------------------------------------- finding
def find_adapter(path: str | Path) -> Path:
    """The PEFT adapter folder for a run folder, a checkpoint folder or an adapter folder."""
    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate
    if not path.exists():
        raise ExportError(f"not found: {path}", "give a run folder or a folder with adapter_config.json")
    if (path / "config.yaml").is_file():
        raise ExportError(f"the run {path.name} has no final adapter yet (no adapter/{ADAPTER_CONFIG})",
                          "finish or stop the run first (stopping saves it), or export a checkpoint: "
                          f"{path / 'checkpoints' / 'step-N'}")
    raise ExportError(f"{path} has no {ADAPTER_CONFIG}", "give a run folder or a PEFT adapter folder")


def find_run_dir(adapter_dir: Path) -> Path | None:
    """The run folder an adapter belongs to (RUN/adapter, RUN/checkpoints/step-N/adapter), if any."""
    for folder in [adapter_dir, *list(adapter_dir.resolve().parents)[:3]]:
        if (folder / "config.yaml").is_file():
            return folder
    return None


def find_base_model(adapter_config: dict, base_dir: str | Path | None = None) -> BaseModel:
    """The base model's config.json: `base_dir`, else adapter_config's base_model_name_or_path as a folder or
    a hub id already in the Hugging Face cache (never downloads)."""
    name = base_dir or adapter_config.get("base_model_name_or_path")
    if not name:
        raise ExportError("the adapter does not name its base model (base_model_name_or_path is empty)",
                          "pass the base model's folder with --base DIR")
    folder = Path(str(name)).expanduser()
    if not folder.exists() and folder.parts[-3:] == ("resources", "demo", "model"):
        from grpo_studio.engine.common.demo import demo_model_dir  # the demo model of another install of the app

        folder = demo_model_dir()
    if not folder.exists() and is_gguf(folder):  # the GGUF a run trained on, moved since: its converted folder
        folder = converted_folder_of_missing(folder) or folder
    if not folder.exists() and is_gguf(folder):
        raise ExportError(f"the base model {name} is not on this machine: the GGUF file the run trained on was "
                          "moved or deleted, and no converted copy of it is in the cache",
                          "put the GGUF file back where it was, or pass the model's folder (or the GGUF file) "
                          "with --base")
    if not (folder / "config.json").is_file():
        from grpo_studio.engine.common.errors import StudioError
        from grpo_studio.engine.common.sources import local_model_folder

        try:  # a local folder, or a hub id in the cache (dotted ids too): engine.sources decides
            folder = local_model_folder(str(name))
        except StudioError as error:
            raise ExportError(f"the base model {name} is not on this machine (its config.json is needed to name "
                              f"the tensors): {error.message}",
                              f"download it (`grpo-studio download {name}`) or pass its folder with --base DIR"
                              ) from None
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return BaseModel(str(name), folder, config)


# --------------------------------------------------------------------------------------------- reading
def read_adapter_config(adapter_dir: Path) -> dict:
    config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    kind = config.get("peft_type", "LORA")
    if kind != "LORA":
        raise ExportError(f"the adapter is {kind}, not LoRA", "llama.cpp loads LoRA adapters only; export a "
                                                                "merged model instead (--merged DIR)")
    refusals = {
        "use_dora": ("DoRA adapters cannot be written as GGUF LoRA: llama.cpp has no magnitude vector",
                     "export a merged model (--merged DIR), or train with plain LoRA"),
        "modules_to_save": ("the adapter carries fully trained modules (modules_to_save: {value}), which a GGUF "
                            "LoRA cannot hold", "export a merged model instead (--merged DIR)"),
        "trainable_token_indices": ("the adapter trains token embeddings (trainable_token_indices), which a "
                                    "GGUF LoRA cannot hold", "export a merged model instead (--merged DIR)"),
        "target_parameters": ("the adapter targets raw parameters ({value}), which a GGUF LoRA cannot hold",
                              "export a merged model instead (--merged DIR)"),
        "fan_in_fan_out": ("the adapter stores transposed weights (fan_in_fan_out), which this export does not "
                           "handle", "export a merged model instead (--merged DIR)"),
        "lora_bias": ("the adapter trains a bias on lora_B (lora_bias), which llama.cpp cannot apply",
                      "export a merged model instead (--merged DIR)"),
    }
    for key, (message, hint) in refusals.items():
        value = config.get(key)
        if value:
            raise ExportError(message.format(value=value), hint)
    if config.get("bias", "none") != "none":
        raise ExportError(f"the adapter trains biases (bias: {config['bias']}), which a GGUF LoRA cannot hold",
                          "export a merged model instead (--merged DIR)")
    return config


def read_tensors(adapter_dir: Path) -> dict[str, np.ndarray]:
    """Every tensor of adapter_model.safetensors as float32 numpy (through torch: numpy has no bfloat16)."""
    path = adapter_dir / ADAPTER_WEIGHTS
    if not path.is_file():
        other = adapter_dir / "adapter_model.bin"
        hint = ("re-save it with safetensors (model.save_pretrained(dir, safe_serialization=True))"
                if other.is_file() else "the adapter folder is incomplete; export a checkpoint's adapter instead")
        raise ExportError(f"missing adapter file: {path}", hint)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key).float().numpy() for key in handle.keys()}


def module_scale(config: dict, module: str, rank: int) -> float:
    """peft's scaling for one module: alpha / r, or alpha / sqrt(r) with rsLoRA, where alpha comes from
    alpha_pattern when a key matches (peft's rule: the key is a regex matching the end of the module name
    at a dot boundary; the first matching key wins)."""
    alpha = float(config.get("lora_alpha", 8))
    for key, value in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            alpha = float(value)
            break
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def lora_pairs(config: dict, tensors: dict[str, np.ndarray]) -> list[LoraPair]:
    """The adapter's (A, B) pairs with their scales; refuses anything that is not a plain LoRA pair."""
    embedding = next((key for key in tensors if "lora_embedding_" in key), None)
    if embedding:
        raise ExportError(f"the adapter has an embedding LoRA ({embedding}), which this export does not write",
                          "train without LoRA on embed_tokens (the default target_modules leave it out), "
                          "or export a merged model (--merged DIR)")
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        match = _KEY.match(key)
        if not match:
            what = "a DoRA magnitude vector" if "lora_magnitude_vector" in key else "not a lora_A/lora_B weight"
            raise ExportError(f"unexpected tensor in the adapter: {key} ({what})",
                              "export a merged model instead (--merged DIR)")
        parts.setdefault(match["module"], {})[match["part"]] = value
    pairs = []
    for module, pair in parts.items():
        if set(pair) != {"lora_A", "lora_B"}:
            raise ExportError(f"the adapter has only {', '.join(pair)} for {module}", "the adapter file is broken; "
                              "export a checkpoint's adapter instead")
        a, b = pair["lora_A"], pair["lora_B"]
        if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise ExportError(f"{module}: lora_A {a.shape} and lora_B {b.shape} are not a linear LoRA pair",
                              "only LoRA on linear layers can be exported")
        pairs.append(LoraPair(module, a, b, module_scale(config, module, a.shape[0])))
    if not pairs:
        raise ExportError("the adapter has no LoRA weights", "export a trained adapter")
    return pairs


# --------------------------------------------------------------------------------------------- planning
def choose_alpha(pairs: list[LoraPair]) -> float:
    """The alpha most modules need (llama.cpp scale = alpha / rank), so most lora_b stay as trained."""
    needed = Counter(float(np.float32(p.scale * p.rank)) for p in pairs)
    return needed.most_common(1)[0][0]


def llama_cpp_scale(alpha: float, rank: int) -> float:
    alpha = float(np.float32(alpha))  # what the file holds
    return alpha / rank if alpha else 1.0


def encode(data: np.ndarray, qtype: Q) -> tuple[np.ndarray, Q]:
    """Data in the file's type; q8_0 needs rows that are whole blocks of 32, else that tensor is f16."""
    if qtype == Q.F32:
        return data.astype(np.float32), qtype
    if qtype == Q.F16:
        return data.astype(np.float16), qtype
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if data.shape[-1] % block:
        return data.astype(np.float16), Q.F16
    return gguf.quants.quantize(data.astype(np.float32), qtype), qtype


@dataclass
class Plan:
    arch: ArchInfo
    alpha: float
    tensors: list[tuple[str, np.ndarray, Q]]  # in file order: each pair's lora_a then lora_b
    folded: list[str]
    f16_fallback: list[str]


def plan_export(pairs: list[LoraPair], base: BaseModel, outtype: str) -> Plan:
    if outtype not in OUTTYPES:
        raise ExportError(f"unknown outtype '{outtype}'", f"use one of {', '.join(OUTTYPES)}")
    info = arch_info(base.config)
    names = TensorNames(info, base.config)
    tied = bool(base.config.get("tie_word_embeddings", (base.config.get("text_config") or {}).get(
        "tie_word_embeddings", False))) or info.arch in (gguf.MODEL_ARCH.GEMMA2, gguf.MODEL_ARCH.GEMMA3)
    alpha = choose_alpha(pairs)
    qtype = OUTTYPES[outtype][0]
    named, unmapped = [], []
    for pair in pairs:
        name = names.gguf_name(pair.module)
        if name is None:
            unmapped.append(pair.module)
        elif name == "output.weight" and tied:
            raise ExportError(f"the adapter has LoRA on {pair.module}, but this model ties it to the embeddings "
                              "(a llama.cpp model has no separate output tensor)",
                              "export a merged model instead (--merged DIR)")
        else:
            named.append((name, pair))
    if unmapped:
        shown = ", ".join(unmapped[:3]) + (f" and {len(unmapped) - 3} more" if len(unmapped) > 3 else "")
        raise ExportError(f"llama.cpp has no {info.name} tensor for the adapted modules {shown}",
                          "target only the language model's linear layers, or export a merged model (--merged DIR)")
    plan = Plan(info, alpha, [], [], [])
    for name, pair in sorted(named, key=lambda item: _natural(item[0])):
        b = pair.b
        factor = pair.scale / llama_cpp_scale(alpha, pair.rank)
        if abs(factor - 1.0) > 1e-7:
            b = b * factor
            plan.folded.append(pair.module)
        heads = permute_heads(pair.module, base.config) if info.permute_qk else None
        if heads:
            b = permute_rows(b, heads)
        for suffix, data in ((".lora_a", pair.a), (".lora_b", b)):
            encoded, used = encode(data, qtype)
            if used != qtype:
                plan.f16_fallback.append(name + suffix)
            plan.tensors.append((name + suffix, encoded, used))
    return plan


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------------------------- writing
def export_gguf(adapter_dir: str | Path, out_path: str | Path, outtype: str = "f16", *,
                base_dir: str | Path | None = None, name: str | None = None, force: bool = False,
                log: Callable[[str], None] | None = None) -> ExportResult:
    """Write the adapter as a GGUF LoRA for llama.cpp / Ollama. Raises ExportError, before writing anything,
    for what a GGUF LoRA cannot hold, and for an existing out_path unless `force` (never a link or device)."""
    log = log or (lambda message: None)
    adapter_dir = find_adapter(adapter_dir)
    out_path = Path(out_path).expanduser()
    check_file_target(out_path, force)
    log(f"reading adapter {adapter_dir}")
    config = read_adapter_config(adapter_dir)
    pairs = lora_pairs(config, read_tensors(adapter_dir))
    base = find_base_model(config, base_dir)
    plan = plan_export(pairs, base, outtype)
    log(f"base model {base.name}: architecture {plan.arch.name}, {len(pairs)} LoRA pairs, alpha {plan.alpha:g}"
        + (", q/k rows permuted as llama.cpp does" if plan.arch.permute_qk else ""))
    if plan.folded:
        log(f"{len(plan.folded)} modules need another scale than alpha / rank (rsLoRA or rank/alpha patterns): "
            "folded into lora_b")
    if plan.f16_fallback:
        log(f"{len(plan.f16_fallback)} tensors have rows that are not multiples of 32 (e.g. rank "
            f"{pairs[0].rank}); written as f16 instead of q8_0")
    log(f"writing GGUF {out_path} ({outtype})")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    check_file_target(out_path, force)  # again: the checks above took a while
    _write(plan, base, out_path, outtype, name or f"{Path(base.name).name} GRPO LoRA")
    return ExportResult(out_path, out_path.stat().st_size, plan.arch.name, plan.alpha, len(plan.tensors),
                        plan.folded, plan.f16_fallback)


def _write(plan: Plan, base: BaseModel, out_path: Path, outtype: str, name: str) -> None:
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), plan.arch.name)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, plan.alpha)
        writer.add_name(name)
        writer.add_base_model_count(1)
        if base.is_hub_id:
            writer.add_base_model_name(0, base.name)
            writer.add_base_model_repo_url(0, f"https://huggingface.co/{base.name}")
        else:  # a folder: its name, not the user's full path
            writer.add_base_model_name(0, Path(base.name).name)
        writer.add_file_type(int(OUTTYPES[outtype][1]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for tensor_name, data, qtype in plan.tensors:
            raw = None if qtype in (Q.F32, Q.F16) else qtype
            writer.add_tensor(tensor_name, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
