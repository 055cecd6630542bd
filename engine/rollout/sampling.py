"""Next-token sampling with the run's settings, with the semantics and order of Hugging Face's logits
processors: repetition penalty, then temperature, top-k, top-p, min-p; softmax and one multinomial draw.

Every field is explicit (`SamplingParams.from_grpo`), so nothing from a model's own generation_config
(a repetition penalty, min_p, another top_k) can slip into the rollouts. One deliberate difference from
HF: the repetition penalty counts the tokens each row has seen (its prompt and completion so far), not the
left padding of the batch, whose amount depends on which prompts happen to share a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = -float("inf")


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    greedy: bool = False  # argmax (tests and evaluation); the filters above are then irrelevant

    @classmethod
    def from_grpo(cls, grpo) -> SamplingParams:
        """The sampling fields of the run's `grpo` config section."""
        return cls(temperature=grpo.temperature, top_p=grpo.top_p, top_k=grpo.top_k, min_p=grpo.min_p,
                   repetition_penalty=grpo.repetition_penalty)

    def hf_kwargs(self) -> dict:
        """The same settings as `GenerationConfig` fields (for the reference backend)."""
        if self.greedy:
            return {"do_sample": False, "repetition_penalty": self.repetition_penalty}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "min_p": self.min_p if self.min_p > 0 else None, "repetition_penalty": self.repetition_penalty}


def process_logits(scores: torch.Tensor, seen: torch.Tensor | None, params: SamplingParams) -> torch.Tensor:
    """Filtered, tempered fp32 scores [B, V]; `seen` [B, V] bool marks the tokens to penalise."""
    scores = scores.float()
    if params.repetition_penalty != 1.0 and seen is not None:
        penalised = torch.where(scores < 0, scores * params.repetition_penalty, scores / params.repetition_penalty)
        scores = torch.where(seen, penalised, scores)
    if params.greedy:
        return scores
    if params.temperature != 1.0:
        scores = scores / params.temperature
    if params.top_k > 0:
        k = min(params.top_k, scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, NEG_INF)  # ties with the k-th score stay
    if params.top_p < 1.0:
        ascending, order = torch.sort(scores, dim=-1)
        drop = ascending.softmax(-1).cumsum(-1) <= 1 - params.top_p
        drop[..., -1] = False  # the most likely token always stays
        scores = scores.masked_fill(drop.scatter(-1, order, drop), NEG_INF)
    if params.min_p > 0:
        probs = scores.softmax(-1)
        drop = probs < params.min_p * probs.amax(-1, keepdim=True)
        drop.scatter_(-1, probs.argmax(-1, keepdim=True), False)
        scores = scores.masked_fill(drop, NEG_INF)
    return scores


def next_tokens(scores: torch.Tensor, seen: torch.Tensor | None, params: SamplingParams,
                uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row [B] from raw last-position logits [B, V]; `uniforms` [B, 1] in [0, 1) are the draws
    to use (row_rng.py), else they come from torch's generator."""
    scores = process_logits(scores, seen, params)
    if params.greedy:
        return scores.argmax(-1)
    return draw(scores.softmax(-1), uniforms)


def draw(probs: torch.Tensor, uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """One index per row with probability probs[row, index], by inverting the cumulative distribution: the
    same distribution as torch.multinomial(probs, 1), whose CPU kernel draws an exponential per vocabulary
    entry (a quarter of a 20M model's decode step). A zero-probability entry adds nothing to the sum, so it
    spans an empty interval and is never drawn; fp32 rounding moves the other boundaries by ~1e-7."""
    cdf = probs.float().cumsum(-1)
    if uniforms is None:
        uniforms = torch.rand(probs.shape[0], 1, device=probs.device)
    u = uniforms.to(cdf.device) * cdf[:, -1:]
    index = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=probs.shape[-1] - 1)
    off = probs.gather(1, index[:, None]).squeeze(1) == 0  # u rounded up to the total: take the last entry
    if off.any():  # with positive probability (vanishingly rare)
        index[off] = (probs[off] > 0).long().cumsum(-1).argmax(-1)
    return index
