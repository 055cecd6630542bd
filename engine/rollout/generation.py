"""Generation: `num_generations` sampled completions per prompt, by one of two backends.

- fast (the default; `engine/rollout/decode.py`): one prefill per distinct prompt shared by its G
  completions, a preallocated KV cache, LoRA merged into a copy of the weights while sampling (when it fits),
  bf16 where that is faster, finished rows leaving the batch;
- hf: Hugging Face `generate` on the peft model, the reference the fast path is tested against.
Both sample with exactly the run's settings (`SamplingParams`): a model's own generation_config never adds
a repetition penalty, min_p or top_k of its own.

Prompts are left-padded into one batch (position ids come from the attention mask); completions come back
right-padded, with a mask that keeps every token up to and including the first EOS, as TRL does. Large
steps are generated in slices of `batch_size` completions to bound the KV cache; on the fast path each
completion's random draws are keyed by its place in the step (row_rng.py), so the slicing changes nothing.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grpo_studio.engine.common.choices import GENERATION_BACKENDS
from grpo_studio.engine.common.groups import prompt_of, to_rows
from grpo_studio.engine.rollout.sampling import SamplingParams


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # [N, P] left-padded, each prompt repeated num_generations times in a row
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, C] right-padded
    completion_mask: torch.Tensor  # [N, C] 1 up to and including the first EOS
    texts: list[str]  # decoded completions (special tokens dropped)
    truncated: torch.Tensor | None = None  # [N] bool: no EOS within max_completion_length (cut off)
    generation: str = ""  # how it was generated (backend, dtype, weight layout), for the log
    # [N, C] the sampler's own fp32 log-probs, when it samples in another dtype than the training forward
    # (the fast path in bf16 for an fp32 run); the loss corrects and measures that mismatch
    sampling_logps: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.completion_ids.shape[0]


def completion_token_ids(rollout: Rollout) -> list[list[int]]:
    """Each completion's token ids up to and including its EOS (no padding)."""
    return [row[:n].tolist() for row, n in zip(rollout.completion_ids, rollout.completion_mask.sum(1))]


def left_pad(sequences: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def completion_mask(ids: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """1 for every token up to and including the first EOS of each row (all of a row without EOS)."""
    is_eos = torch.isin(ids, torch.tensor(eos_ids, device=ids.device))
    seen_before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0
    return (~seen_before).long()


@torch.no_grad()
def generate(model: nn.Module, tokenizer, prompts: list[list[int]], *, num_generations: int,
             max_completion_length: int, sampling: SamplingParams | None = None, backend: str = "auto",
             generation_dtype: str = "auto", batch_size: int | None = None,
             device: torch.device | None = None) -> Rollout:
    """Sample `num_generations` completions for each tokenised prompt."""
    if backend not in GENERATION_BACKENDS:
        raise ValueError(f"generation_backend must be one of {', '.join(GENERATION_BACKENDS)}, not {backend!r}")
    sampling = sampling or SamplingParams()
    device = device or next(model.parameters()).device
    # each prompt padded once, then one row per completion (the fast path prefills the distinct prompts)
    distinct_ids, distinct_mask = left_pad(prompts, tokenizer.pad_token_id, device)
    prompt_ids, prompt_mask = to_rows(distinct_ids, num_generations), to_rows(distinct_mask, num_generations)
    total = prompt_ids.shape[0]
    eos_ids = _eos_ids(model, tokenizer)
    step = batch_size or total
    was_training = model.training
    model.eval()  # no dropout while sampling
    sampler_logps = None
    try:
        if backend == "hf":
            description = "hf generate on the peft model"
            pieces = [_hf_slice(model, prompt_ids[i:i + step], prompt_mask[i:i + step], eos_ids,
                                tokenizer.pad_token_id, max_completion_length, sampling)
                      for i in range(0, total, step)]
        else:
            pieces, description, sampler_logps = _fast(
                model, distinct_ids, distinct_mask, num_generations, step,
                eos_ids, tokenizer.pad_token_id, max_completion_length, sampling, generation_dtype)
    finally:
        model.train(was_training)
    width = max(p.shape[1] for p in pieces)
    completion_ids = torch.cat([nn.functional.pad(p, (0, width - p.shape[1]), value=tokenizer.pad_token_id)
                                for p in pieces])
    mask = completion_mask(completion_ids, eos_ids)
    texts = tokenizer.batch_decode(completion_ids.masked_fill(mask == 0, tokenizer.pad_token_id),
                                   skip_special_tokens=True)
    truncated = ~torch.isin(completion_ids, torch.tensor(eos_ids, device=completion_ids.device)).any(1)
    logps = None if sampler_logps is None else torch.cat(
        [nn.functional.pad(p, (0, width - p.shape[1])) for p in sampler_logps]) * mask
    return Rollout(prompt_ids, prompt_mask, completion_ids, mask, texts, truncated, description, logps)


def _fast(model, prompt_ids, prompt_mask, G, step, eos_ids, pad_id, max_new_tokens, sampling,
          generation_dtype) -> tuple[list[torch.Tensor], str, list[torch.Tensor] | None]:
    """(completion pieces, description, the sampler's log-probs per piece when its dtype differs from the
    training forward's, else None)."""
    from grpo_studio.engine.rollout.decode import DecodeSettings, cuda_graphs_available, decode
    from grpo_studio.engine.rollout.row_rng import new_key
    from grpo_studio.engine.rollout.weights import generation_weights

    device = prompt_ids.device
    total = prompt_ids.shape[0] * G
    plan, train_dtype = _plan(model, generation_dtype, device, min(step, total),
                              prompt_ids.shape[1] + max_new_tokens)
    graphs = cuda_graphs_available(device)
    settings = DecodeSettings(max_new_tokens, tuple(eos_ids), pad_id, sampling, static=graphs, compile_step=graphs,
                              rng_key=new_key())  # row-keyed draws: any slicing samples the same completions
    pieces, logps = [], []
    # Merged copies in the training dtype differ from the training forward by rounding only; another dtype
    # (bf16 sampling for an fp32 run) is the mismatch worth correcting and measuring.
    differs = plan.dtype != train_dtype
    with generation_weights(model, plan, train_dtype) as lm:
        for start in range(0, total, step):
            rows = prompt_of(torch.arange(start, min(start + step, total), device=device), G)
            first = int(rows[0])
            ids, piece_logps = decode(lm, prompt_ids[first:int(rows[-1]) + 1], prompt_mask[first:int(rows[-1]) + 1],
                                      rows - first, settings, torch.arange(start, start + rows.numel(), device=device),
                                      with_logps=True)
            pieces.append(ids)
            logps.append(piece_logps)
    return pieces, "fast: " + plan.describe(), logps if differs else None


def _plan(model, generation_dtype: str, device: torch.device, rows: int, capacity: int):
    """The dtype and weight layout for this rollout: merged copies when they fit beside the KV cache."""
    from grpo_studio.engine.rollout import weights as gw
    from grpo_studio.engine.rollout.kv_cache import cache_bytes

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    train_dtype = base.get_input_embeddings().weight.dtype
    params = sum(p.numel() for p in base.parameters())
    dtype, why = gw.resolve_generation_dtype(generation_dtype, train_dtype, device, params)
    config = base.config.get_text_config(decoder=True)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    kv = cache_bytes(rows, capacity, config.num_hidden_layers, kv_heads * head_dim, dtype.itemsize)
    merged = False
    if gw.can_merge(model):
        merged = gw.merged_copy_bytes(model, dtype, train_dtype) + kv < gw.MEMORY_SHARE * gw.free_memory(device)
        why += "" if merged else "; merged weights would not fit in free memory"
    if not merged and dtype != train_dtype:  # a dtype copy alone would cost nearly as much memory
        dtype, why = train_dtype, why + "; staying in the training dtype"
    return gw.GenerationPlan(dtype, merged, why), train_dtype


def _hf_slice(model, ids, mask, eos_ids, pad_id, max_new_tokens, sampling: SamplingParams) -> torch.Tensor:
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, eos_token_id=eos_ids, pad_token_id=pad_id,
                              use_cache=True, **sampling.hf_kwargs())
    with _clean_generation_config(model, pad_id):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    return out[:, ids.shape[1]:]


@contextlib.contextmanager
def _clean_generation_config(model: Any, pad_id: int):
    """generate fills every field left unset from the model's own generation_config (repetition_penalty,
    min_p, top_k, bad_words_ids, ...): give it an empty one for the call, so only the run's settings count."""
    from transformers import GenerationConfig

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    own = base.generation_config
    base.generation_config = GenerationConfig(pad_token_id=pad_id)
    try:
        yield
    finally:
        base.generation_config = own


def _eos_ids(model: nn.Module, tokenizer) -> list[int]:
    """EOS ids from the tokenizer and the model's generation config (chat models often add <|im_end|>)."""
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, config_eos):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if not ids:
        raise ValueError("the tokenizer has no EOS token; completions could never end")
    return sorted(ids)
