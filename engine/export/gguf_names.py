"""Hugging Face module names -> GGUF tensor names, per architecture, as llama.cpp's converter names them.

Facts from llama.cpp's `convert_hf_to_gguf.py` (its `conversion/` package):
- The GGUF architecture is the converter class's, not the Hugging Face one: `MistralForCausalLM` goes through
  the Llama converter, so a Mistral base GGUF says `llama` (and llama.cpp refuses an adapter whose
  `general.architecture` differs from the model's).
- Only the Llama converter (llama, mistral) permutes the rows of q_proj / k_proj (`undo_permute`): HF stores
  rotary pairs as two halves of each head, GGUF interleaves them. Qwen2/3, Gemma 2/3 and Phi-3 use the
  NeoX rope layout and are written unpermuted.
- Names come from gguf's own `TensorNameMap`; Phi-3's fused `qkv_proj` / `gate_up_proj` map to `attn_qkv` /
  `ffn_up` (llama.cpp splits them at run time), so their LoRA pairs map one to one.
- Gemma 3 multimodal checkpoints keep the text model under `model.language_model.`; the converter strips it.
Torch-free: numpy and gguf only.
"""
from __future__ import annotations

from dataclasses import dataclass

import gguf
import numpy as np

from grpo_studio.engine.common.errors import ExportError


@dataclass(frozen=True)
class ArchInfo:
    hf_class: str
    arch: gguf.MODEL_ARCH
    permute_qk: bool  # llama.cpp's Llama converter permutes q/k rows; the adapter must match

    @property
    def name(self) -> str:
        """The `general.architecture` string llama.cpp expects."""
        return gguf.MODEL_ARCH_NAMES[self.arch]


_ARCHS = {
    "LlamaForCausalLM": (gguf.MODEL_ARCH.LLAMA, True),
    "MistralForCausalLM": (gguf.MODEL_ARCH.LLAMA, True),
    "Qwen2ForCausalLM": (gguf.MODEL_ARCH.QWEN2, False),
    "Qwen3ForCausalLM": (gguf.MODEL_ARCH.QWEN3, False),
    "GemmaForCausalLM": (gguf.MODEL_ARCH.GEMMA, False),
    "Gemma2ForCausalLM": (gguf.MODEL_ARCH.GEMMA2, False),
    "Gemma3ForCausalLM": (gguf.MODEL_ARCH.GEMMA3, False),
    "Gemma3ForConditionalGeneration": (gguf.MODEL_ARCH.GEMMA3, False),
    "Phi3ForCausalLM": (gguf.MODEL_ARCH.PHI3, False),
}
SUPPORTED = tuple(_ARCHS)

# Prefixes of multimodal checkpoints' text model, replaced the way llama.cpp's LoRA converter does.
_TEXT_PREFIXES = (("model.language_model.", "model."), ("language_model.", ""))


def arch_info(config: dict) -> ArchInfo:
    """The GGUF architecture of a base model from its config.json; ExportError when llama.cpp export is
    not supported for it here."""
    names = (config.get("architectures") or [None])
    hf_class = names[0]
    if hf_class not in _ARCHS:
        raise ExportError(f"GGUF export does not support the architecture {hf_class or 'unknown'} "
                          f"(model_type {config.get('model_type', '?')})",
                          f"supported: {', '.join(SUPPORTED)}; export a merged model instead (--merged DIR) "
                          "and convert it with llama.cpp's convert_hf_to_gguf.py")
    arch, permute = _ARCHS[hf_class]
    return ArchInfo(hf_class, arch, permute)


def text_config(config: dict) -> dict:
    """The language model's part of a config (multimodal configs nest it under text_config)."""
    return config.get("text_config") or config


def block_count(config: dict) -> int:
    return int(text_config(config)["num_hidden_layers"])


class TensorNames:
    """Maps module names like `model.layers.3.self_attn.q_proj` to `blk.3.attn_q.weight`."""

    def __init__(self, info: ArchInfo, config: dict) -> None:
        self.info = info
        self.map = gguf.get_tensor_name_map(info.arch, block_count(config))

    def gguf_name(self, module: str) -> str | None:
        for prefix, replacement in _TEXT_PREFIXES:
            if module.startswith(prefix):
                module = replacement + module[len(prefix):]
                break
        return self.map.get_name(module + ".weight", try_suffixes=(".weight",))


def permute_heads(module: str, config: dict) -> int | None:
    """How many heads llama.cpp groups the rows of this module by when it permutes them: the query heads
    for q_proj, the key/value heads for k_proj; None for every other module."""
    text = text_config(config)
    n_head = int(text["num_attention_heads"])
    if module.endswith("q_proj"):
        return n_head
    if module.endswith("k_proj"):
        return int(text.get("num_key_value_heads") or n_head)
    return None


def permute_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row permutation: within each of `heads` heads, the rows of the two rotary halves are
    interleaved. Only rows move, so for LoRA it applies to lora_B (out, rank) alone:
    permute(W + s*B@A) == permute(W) + s*permute(B)@A."""
    out = weights.shape[0]
    if out % (2 * heads):
        raise ExportError(f"cannot permute a tensor with {out} rows into {heads} rotary heads",
                          "the base model's config.json does not match the adapter (wrong base model?)")
    return (weights.reshape(heads, 2, out // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))
