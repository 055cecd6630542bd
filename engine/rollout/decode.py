"""The lean decode loop: one prefill per distinct prompt, a preallocated KV cache, sampling done here.

Inputs are the same as HF generate sees (left-padded prompts, 2D attention mask, position ids from the
mask), so greedy decoding gives the same tokens. Differences are in the cost only:
- the G completions of a prompt share its prefill (the cache is expanded after it);
- no per-step logits-processor / stopping-criteria machinery, one forward of the last position only;
- a row that has produced EOS leaves the batch (eager mode), and the loop stops when none is left;
- on CUDA the decode step can run as a captured graph (`torch.compile(mode="reduce-overhead")` over a
  static cache); any failure there falls back to eager decoding for the rest of the process.
Finished rows are filled with the pad token, as HF does.
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from grpo_studio.engine.rollout.kv_cache import new_cache, select_rows
from grpo_studio.engine.rollout.row_rng import RowDraws
from grpo_studio.engine.rollout.sampling import SamplingParams, next_tokens

log = logging.getLogger(__name__)
_compiled_steps: dict[int, Callable] = {}  # id(model) -> compiled decode step
_compile_failed = False


@dataclass(frozen=True)
class DecodeSettings:
    max_new_tokens: int
    eos_ids: tuple[int, ...]
    pad_id: int
    sampling: SamplingParams
    static: bool = False  # StaticCache + fixed shapes (CUDA graphs); eager otherwise
    compile_step: bool = False  # capture the decode step (only meaningful with static on CUDA)
    rng_key: int | None = None  # row-keyed sampling (row_rng.py): the same completions however rows are sliced


def cuda_graphs_available(device: torch.device) -> bool:
    """Whether to try a captured decode step: CUDA and torch.compile present and not failed before.
    Not exercised by the CPU test suite; the eager path is what CPU runs use."""
    return device.type == "cuda" and hasattr(torch, "compile") and not _compile_failed


@torch.no_grad()
def decode(lm: nn.Module, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, rows: torch.Tensor,
           settings: DecodeSettings, streams: torch.Tensor | None = None, with_logps: bool = False):
    """Completions [len(rows), C] (C = steps taken) for completion i continuing prompt rows[i]; `streams`
    [len(rows)]: each completion's index in the whole step, which keys its random draws (with rng_key).
    with_logps also returns the sampler's own log-prob of each token, log_softmax(logits / temperature) in
    fp32 from the sampling weights' logits (what the loss recomputes, so the two can be compared): (ids, logps)."""
    device = prompt_ids.device
    P, B = prompt_ids.shape[1], rows.numel()
    capacity = P + settings.max_new_tokens
    cache = new_cache(lm.config, capacity, settings.static)
    positions = prompt_mask.long().cumsum(-1) - 1
    positions = positions.masked_fill(prompt_mask == 0, 1)  # as HF generate does
    mask = torch.zeros(prompt_ids.shape[0], capacity, dtype=prompt_mask.dtype, device=device)
    mask[:, :P] = prompt_mask
    split = _decoder_and_head(lm)  # resolved once: the decode loop below runs a forward per token
    cache_kwarg = _cache_kwarg(split[0] if split else lm)
    logits = _last_logits(lm, split, prompt_ids, mask if settings.static else mask[:, :P], positions, cache,
                          cache_kwarg)
    select_rows(cache, rows)
    logits, mask, next_pos = logits[rows], mask[rows], positions[rows, -1] + 1

    seen = None
    if settings.sampling.repetition_penalty != 1.0:
        seen = torch.zeros(B, logits.shape[-1], dtype=torch.bool, device=device)
        seen.scatter_(1, prompt_ids[rows], prompt_mask[rows].bool())  # real prompt tokens, not the padding
    eos = torch.tensor(settings.eos_ids, device=device)
    out = torch.full((B, settings.max_new_tokens), settings.pad_id, dtype=torch.long, device=device)
    out_logps = torch.zeros(B, settings.max_new_tokens, device=device) if with_logps else None
    active = torch.arange(B, device=device)  # original row of each batch row
    running = torch.ones(B, dtype=torch.bool, device=device)  # static mode keeps finished rows
    step_fn = _step_function(lm, settings, split)
    key = None if settings.sampling.greedy else settings.rng_key
    draws = RowDraws(key, streams, settings.max_new_tokens) if key is not None and streams is not None else None
    taken = 0
    for t in range(settings.max_new_tokens):
        tokens = next_tokens(logits, seen, settings.sampling, draws.at(active, t) if draws else None)
        if settings.static:
            tokens = torch.where(running, tokens, settings.pad_id)
        out[active, t] = tokens
        if out_logps is not None:  # with_logps
            scaled = logits.float() / settings.sampling.temperature
            out_logps[active, t] = (scaled.gather(1, tokens[:, None]) - scaled.logsumexp(-1, keepdim=True)).squeeze(1)
        taken = t + 1
        finished = torch.isin(tokens, eos)
        if settings.static:
            running &= ~finished
            if not running.any() or t + 1 == settings.max_new_tokens:
                break
        else:
            if finished.any():
                keep = (~finished).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                active, tokens, mask, next_pos = active[keep], tokens[keep], mask[keep], next_pos[keep]
                seen = seen[keep] if seen is not None else None
                select_rows(cache, keep)
            if t + 1 == settings.max_new_tokens:
                break
        if seen is not None:
            seen[torch.arange(tokens.numel(), device=device), tokens] = True
        mask[:, P + t] = 1
        step_mask = mask if settings.static else mask[:, :P + t + 1]
        logits = step_fn(lm, tokens[:, None], step_mask, next_pos[:, None], cache, cache_kwarg)
        next_pos = next_pos + 1
    return (out[:, :taken], out_logps[:, :taken]) if out_logps is not None else out[:, :taken]


def _forward(lm: Any, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache,
             cache_kwarg: str) -> torch.Tensor:
    """The captured decode step: `_last_logits`, the decoder and head looked up while tracing."""
    return _last_logits(lm, _decoder_and_head(lm), ids, mask, positions, cache, cache_kwarg)


def _last_logits(lm: Any, split: tuple[Any, nn.Module] | None, ids: torch.Tensor, mask: torch.Tensor,
                 positions: torch.Tensor, cache, cache_kwarg: str) -> torch.Tensor:
    """Last-position logits [B, V] in fp32 (HF generate also samples from fp32 logits).

    The head runs on the 2D [B, H] last-position slice: handed the 3D [B, 1, H] slice that HF's
    `logits_to_keep=1` makes, torch's CPU bf16 matmul copies the whole transposed (frozen) lm_head first
    (445 MiB at Qwen2.5-1.5B's width, per prefill and per one-row decode step; bench_memory_model.py)."""
    if split is None:  # a model that post-processes its logits (soft-capping, a logit scale): HF's own head
        out = lm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                 **{cache_kwarg: cache})
        return out.logits[:, -1].float()
    decoder, head = split
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                  **{cache_kwarg: cache})
    return head(out.last_hidden_state[:, -1]).float()


def _decoder_and_head(lm: Any) -> tuple[Any, nn.Module] | None:  # lm: a transformers causal LM
    config = lm.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None) is not None:
        return None
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else None
    head = lm.get_output_embeddings()
    if decoder is None or decoder is lm or not isinstance(head, nn.Linear):
        return None
    return decoder, head


def _cache_kwarg(model: nn.Module) -> str:
    """transformers 5.x names the cache argument `cache`; older releases `past_key_values`."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _step_function(lm: nn.Module, settings: DecodeSettings, split: tuple[Any, nn.Module] | None):
    if not (settings.static and settings.compile_step and lm.device.type == "cuda" and not _compile_failed):
        return lambda lm, *rest: _last_logits(lm, split, *rest)
    compiled = _compiled_steps.get(id(lm))
    if compiled is None:
        compiled = torch.compile(_forward, mode="reduce-overhead", dynamic=False)
        _compiled_steps[id(lm)] = compiled

    def guarded(*args):
        global _compile_failed
        if not _compile_failed:
            try:
                return compiled(*args)
            except Exception as exc:  # compiler / graph capture problems: decode eagerly from now on
                _compile_failed = True
                log.warning("captured decode step failed (%s); decoding eagerly", exc)
        return _forward(*args)

    return guarded
