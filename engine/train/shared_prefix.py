"""The training forward with each prompt computed once for its G completions.

A micro-batch holds G completions of the same prompt, so the plain forward runs every prompt token G times.
Here the distinct prompts run once (keeping their keys and values, with autograd), the keys and values are
expanded to the completions' rows by index (whose backward sums the G rows' gradients, exactly what the G
identical copies would have received), and the completions run on top of them. The hidden states of the
completion positions are the plain forward's up to float rounding; the prompt part's cost drops by G×.

Needs a forward that keeps a cache under autograd: not with activation checkpointing (transformers turns
the cache off there, and a recompute would append to it twice), so the caller falls back to the plain
forward then.
"""
from __future__ import annotations

from typing import Any

import torch

from grpo_studio.engine.rollout.decode import _cache_kwarg
from grpo_studio.engine.rollout.kv_cache import select_rows


def distinct_prompts(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of each distinct prompt's first row, row → distinct prompt) for rows where equal prompts are
    adjacent (a rollout's G completions of a prompt are)."""
    keys = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], 1)
    _, inverse, counts = torch.unique_consecutive(keys, dim=0, return_inverse=True, return_counts=True)
    firsts = torch.cumsum(counts, 0) - counts
    return firsts, inverse


def completion_hidden_states(decoder: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                             completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Last hidden states [B, C, H] at the position before each completion token (what predicts it), from
    left-padded prompts [B, P] and right-padded completions [B, C], each distinct prompt run once."""
    from transformers.cache_utils import DynamicCache

    firsts, inverse = distinct_prompts(prompt_ids, prompt_mask)
    mask = torch.cat([prompt_mask, completion_mask], 1)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # as the plain forward numbers them
    P = prompt_ids.shape[1]
    cache = DynamicCache(config=decoder.config)
    kwarg = _cache_kwarg(decoder)
    prompt_out = decoder(input_ids=prompt_ids[firsts], attention_mask=prompt_mask[firsts],
                         position_ids=positions[firsts, :P], use_cache=True, **{kwarg: cache})
    select_rows(cache, inverse)  # differentiable: index_select's backward adds the rows of a prompt up
    completion_out = decoder(input_ids=completion_ids, attention_mask=mask, position_ids=positions[:, P:],
                             use_cache=True, **{kwarg: cache})
    last_prompt = prompt_out.last_hidden_state[:, -1:][inverse]
    return torch.cat([last_prompt, completion_out.last_hidden_state[:, :-1]], 1)
