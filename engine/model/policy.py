"""The policy: a causal LM (optionally 4-bit NF4) with a LoRA adapter, and the hidden-state forward the
fused GRPO loss needs.

The training path never asks the model for logits: `hidden_states` runs the decoder stack only and
`lm_head_weight` hands the output projection to `grpo_studio.kernels.loss.functional`, which computes the
log-probs chunk by chunk. The reference policy is the same weights with the adapter switched off
(`reference_mode`), so there is never a second copy of the model.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.errors import ConfigError

if TYPE_CHECKING:  # peft loads when a model does (startup time)
    from peft import PeftModel

# A transformers causal LM, peft-wrapped or not: its methods (get_decoder, disable_adapter, save_pretrained...)
# are found at run time (nn.Module's typing says Tensor | Module for any attribute).
CausalLM = Any
SMALL_MODEL_PARAMS = 20_000_000  # below this, one CPU thread is fastest


@dataclass
class PolicyModel:
    model: PeftModel
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    base_name: str  # what adapter_config.json names as the base: a hub id or an absolute folder
    offload: Any = None  # the offloaded-checkpointing handle, when activations are offloaded
    notes: list[str] = field(default_factory=list)  # things worth telling the user (sent as log events)


# --------------------------------------------------------------------------------------------- resolving
def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA GPU is available",
                          "set device: auto (or cpu), or check the NVIDIA driver with nvidia-smi")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":  # the rank's own GPU under torchrun (distributed.init_from_env sets it); else GPU 0
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name != "auto":
        return getattr(torch, name)
    from grpo_studio.engine.model.device_choice import auto_dtype

    return auto_dtype(device)  # bf16 only where the GPU computes it natively (not emulated on sm_70/75)


def resolve_model_path(name: str, gguf_file: str | None = None) -> tuple[Path, str]:
    """(local folder with config.json, name for adapter_config.json) for 'demo', a folder or a cached hub id.
    A GGUF model: its dequantized folder, and the GGUF file itself as the adapter's base (the file the
    exported adapter applies to in llama.cpp / Ollama).

    Never downloads: a run fetches its hub model first (engine.hub.fetch); see engine.sources for the rule."""
    from grpo_studio.engine.common.sources import local_gguf_file, local_model_folder, resolve_name

    folder = local_model_folder(name, gguf_file)
    if gguf_file or name.lower().endswith(".gguf"):
        return folder, str(local_gguf_file(name, gguf_file))
    source = resolve_name(name, "model")
    return folder, (source.hub_id if source.kind == "hub" else str(folder))


# --------------------------------------------------------------------------------------------- loading
def _load_error(folder: Path, exc: BaseException) -> ConfigError:
    from grpo_studio.engine.model.files import load_error

    return load_error(Path(folder), exc)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # noqa: BLE001 - a damaged file is named, not reported as a crash
        raise _load_error(folder, exc) from None
    if tokenizer.pad_token_id is None:  # generation pads finished rows; EOS is the usual stand-in
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_policy(config: TrainConfig, folder: Path, base_name: str, tokenizer: Any) -> PolicyModel:
    """Base model (dtype auto, optional NF4) + LoRA + gradient checkpointing, on the configured device."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.load_in_4bit:
        kwargs["quantization_config"] = nf4_config(dtype)
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is the only one on the terminal
    try:
        model: CausalLM = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(folder, exc) from None
    except Exception as exc:  # noqa: BLE001 - e.g. safetensors' own error for a truncated file
        if type(exc).__name__ != "SafetensorError":
            raise
        raise _load_error(folder, exc) from None
    if config.load_in_4bit:
        keep_4bit_layout_for_training(model)
    else:
        model.to(device)
    model.config.use_cache = False  # training forward; generation turns the cache on explicitly

    targets = config.lora.target_modules
    head = model.get_output_embeddings()
    if isinstance(targets, list) and any(_is_module(model, t, head) for t in targets):
        raise ConfigError("lora.target_modules: the output layer (lm_head) cannot carry LoRA here",
                          "the fused GRPO loss reads the lm_head weight directly; target the blocks' "
                          "layers (q_proj, v_proj, ...) or use 'all-linear'")
    # peft annotates lora_alpha as int but only divides by it (scale = alpha / r): a float alpha is right
    lora = LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha,  # type: ignore[arg-type]
                      lora_dropout=config.lora.dropout,
                      target_modules=targets, use_rslora=config.lora.use_rslora, bias="none",
                      task_type="CAUSAL_LM")
    try:
        model = get_peft_model(model, lora)  # peft's 'all-linear' leaves the output layer out
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules: {exc}", "list module names that exist in this model") from None

    model.peft_config["default"].base_model_name_or_path = base_name  # what adapter_config.json names
    policy = PolicyModel(model, tokenizer, device, dtype, base_name)
    if config.gradient_checkpointing:
        policy.offload = _setup_checkpointing(model, config, device, policy.notes)
    if getattr(model.config, "final_logit_softcapping", None):
        policy.notes.append("this model soft-caps its logits; the fused loss uses the uncapped logits")
    return policy


def nf4_config(dtype: torch.dtype):
    from transformers import BitsAndBytesConfig

    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ConfigError("load_in_4bit needs bitsandbytes, which could not be imported",
                          f"reinstall it (`pip install bitsandbytes`) or set load_in_4bit: false ({exc})") from None
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.float32)


def keep_4bit_layout_for_training(model: CausalLM) -> int:
    """Keep bitsandbytes from repacking 4-bit weights into its CPU inference layout; returns the layers changed.

    On CPUs with AVX512-BF16, a Linear4bit in eval mode repacks its weight on the first no-grad forward
    (generation) and keeps the packed layout afterwards. The packed path is inference-only: in the next
    training forward it skips autograd for the input (silently wrong LoRA gradients through every frozen
    layer) and adds the bias in place (`result += bias`), which crashes models with biases (Qwen2). A run
    alternates generation and training every step, so it keeps the trainable layout throughout."""
    changed = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed


def _is_module(model: nn.Module, name: str, head: nn.Module | None) -> bool:
    return head is not None and any(mod is head and (full == name or full.endswith("." + name))
                                    for full, mod in model.named_modules())


def _setup_checkpointing(model: CausalLM, config: TrainConfig, device: torch.device, notes: list[str]):
    """Offloaded checkpointing (kernels.offload) when wanted, else transformers' own checkpointing."""
    from grpo_studio.engine.model.device_choice import should_offload

    offload = should_offload(config, device)  # auto: asks whether the plan *without* offloading fits
    if offload:
        from grpo_studio.kernels.offload.checkpointing import apply_offloaded_checkpointing

        return apply_offloaded_checkpointing(model, offload=True, on_warning=notes.append)
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return None


# ------------------------------------------------------------------------------------- training forward
def decoder(model: CausalLM) -> CausalLM:
    """The decoder stack of a (peft-wrapped) causal LM: returns hidden states, never logits."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = base.get_decoder() if hasattr(base, "get_decoder") else None
    if inner is None:
        inner = getattr(base, base.base_model_prefix, None)
    if inner is None or inner is base:
        raise ConfigError(f"{type(base).__name__}: cannot find its decoder stack",
                          "GRPO Studio supports decoder-only causal LMs (Llama, Qwen, Mistral, Gemma, Phi...)")
    return inner


def lm_head_weight(model: CausalLM) -> torch.Tensor:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    return getattr(head, "base_layer", head).weight


def hidden_states(model: CausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden states (after the final norm) [B, T, H] for a right- or left-padded batch."""
    if position_ids is None:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = decoder(model)(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=False)
    return out.last_hidden_state


@contextlib.contextmanager
def reference_mode(model: CausalLM) -> Iterator[None]:
    """The reference policy: the same base weights with the LoRA adapter switched off."""
    with model.disable_adapter():
        yield


def trainable_parameters(model: nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def set_torch_threads(model: nn.Module, device: torch.device) -> int:
    """CPU threads for this run (unless the user pinned OMP_NUM_THREADS). A small model's matrices are too
    small to split: extra threads only wait on each other, and on a busy machine spinning OpenMP threads
    made the demo ~3x slower. Bigger models use the physical cores (at most 8)."""
    if device.type != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    threads = 1
    if sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        try:
            import psutil

            threads = psutil.cpu_count(logical=False) or os.cpu_count() or 1
        except Exception:
            threads = os.cpu_count() or 1
    torch.set_num_threads(max(1, min(threads, 8)))
    return torch.get_num_threads()
