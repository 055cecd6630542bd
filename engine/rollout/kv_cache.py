"""KV caches allocated once per rollout slice: [rows, kv_heads, prompt + completion, head_dim] per layer.

The distinct prompts are prefilled into it, then `select_rows` expands it to their G completions each (a
prompt's keys and values are computed once) and later drops finished rows. Two kinds:
- `PreallocatedCache` (eager decoding): each step writes one position in place (no torch.cat regrowth, as
  DynamicCache does every step) and attention sees only the filled part, so its cost follows the tokens
  actually generated;
- transformers' `StaticCache` (CUDA graphs / torch.compile): fixed shapes, attention over the whole buffer
  with a mask over the empty slots.
"""
from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, StaticCache


class PreallocatedLayer(CacheLayerMixin):
    is_sliding = False  # keeps every token; sliding-window layers get their window from the mask

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, heads = key_states.shape[:2]
        self.keys = key_states.new_zeros(rows, heads, self.capacity, key_states.shape[-1])
        self.values = value_states.new_zeros(rows, heads, self.capacity, value_states.shape[-1])
        self.device = key_states.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        keys, values = self.keys, self.values
        assert keys is not None and values is not None  # lazy_initialization allocated them
        end = self.length + key_states.shape[-2]
        keys[:, :, self.length:end] = key_states
        values[:, :, self.length:end] = value_states
        self.length = end
        return keys[:, :, :end], values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return self.capacity


class PreallocatedCache(Cache):
    def __init__(self, num_layers: int, capacity: int):
        super().__init__(layers=[PreallocatedLayer(capacity) for _ in range(num_layers)])


def new_cache(config, capacity: int, static: bool) -> Cache:
    if static:
        return StaticCache(config=config, max_cache_len=capacity)
    return PreallocatedCache(config.get_text_config(decoder=True).num_hidden_layers, capacity)


def select_rows(cache: Any, rows: torch.Tensor) -> None:  # a Cache whose layers hold keys and values
    """Row i of the cache becomes old row rows[i]: expands prompts to completions, drops finished rows."""
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, rows)
        layer.values = layer.values.index_select(0, rows)
        if isinstance(cache, StaticCache):  # new tensors: tell dynamo their addresses stay put
            torch._dynamo.mark_static_address(layer.keys)
            torch._dynamo.mark_static_address(layer.values)


def cache_bytes(rows: int, capacity: int, layers: int, kv_dim: int, dtype_bytes: int) -> int:
    """What a slice allocates once expanded: K and V for every layer, row and position (the estimator's KV
    row). The prefill buffer of the distinct prompts (rows / G of it) exists only until the expansion."""
    return 2 * rows * capacity * layers * kv_dim * dtype_bytes
