"""Generation: `num_generations` sampled completions per prompt with Hugging Face `generate` (KV cache on).

Prompts are left-padded into one batch (generate derives position ids from the attention mask);
completions come back right-padded, with a mask that keeps every token up to and including the first EOS,
as TRL does. Large steps are generated in slices of `batch_size` completions to bound the KV cache.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Rollout:
    prompt_ids: torch.Tensor  # [N, P] left-padded, each prompt repeated num_generations times in a row
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, C] right-padded
    completion_mask: torch.Tensor  # [N, C] 1 up to and including the first EOS
    texts: list[str]  # decoded completions (special tokens dropped)
    truncated: torch.Tensor | None = None  # [N] bool: no EOS within max_completion_length (cut off)

    @property
    def size(self) -> int:
        return self.completion_ids.shape[0]


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
             max_completion_length: int, temperature: float = 1.0, top_p: float = 1.0,
             batch_size: int | None = None, device: torch.device | None = None) -> Rollout:
    """Sample `num_generations` completions for each tokenised prompt."""
    device = device or next(model.parameters()).device
    repeated = [p for p in prompts for _ in range(num_generations)]
    prompt_ids, prompt_mask = left_pad(repeated, tokenizer.pad_token_id, device)
    eos_ids = _eos_ids(model, tokenizer)
    was_training = model.training
    model.eval()  # no dropout while sampling
    try:
        step = batch_size or len(repeated)
        pieces = [_generate_slice(model, prompt_ids[i:i + step], prompt_mask[i:i + step], eos_ids,
                                  tokenizer.pad_token_id, max_completion_length, temperature, top_p)
                  for i in range(0, len(repeated), step)]
    finally:
        model.train(was_training)
    width = max(p.shape[1] for p in pieces)
    completion_ids = torch.cat([nn.functional.pad(p, (0, width - p.shape[1]), value=tokenizer.pad_token_id)
                                for p in pieces])
    mask = completion_mask(completion_ids, eos_ids)
    texts = tokenizer.batch_decode(completion_ids.masked_fill(mask == 0, tokenizer.pad_token_id),
                                   skip_special_tokens=True)
    truncated = ~torch.isin(completion_ids, torch.tensor(eos_ids, device=completion_ids.device)).any(1)
    return Rollout(prompt_ids, prompt_mask, completion_ids, mask, texts, truncated)


def _generate_slice(model, ids, mask, eos_ids, pad_id, max_new_tokens, temperature, top_p) -> torch.Tensor:
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature,
                         top_p=top_p, top_k=0, max_new_tokens=max_new_tokens, eos_token_id=eos_ids,
                         pad_token_id=pad_id, use_cache=True)
    return out[:, ids.shape[1]:]


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
