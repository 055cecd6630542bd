"""How much gradient the bf16 gradient kernel's tile filter drops, against an fp64 reference, on a real model's
hidden states (gpu-review item 1).

    .venv/bin/python tests/benchmarks/bench_tile_filter.py --model /path/to/hf-folder [--tokens 384]

The filter is emulated in torch exactly as the kernel applies it to one [BLOCK_N, BLOCK_V] tile of |onehot - p|
(p from bf16-rounded hidden states and lm_head, in fp64): the old rule skipped a tile when every entry was below
2^-12; the kernel's rule skips it when every row's sum over the tile is below FILTER_EPS * BLOCK_V / V, so a row
loses under FILTER_EPS * (1 + BLOCK_V / V) of probability mass in all. Per rule and tile shape: share of tiles
skipped, per-row relative error of grad_h (median, p90, max), the largest probability mass a row lost, and the
rows' entropy. tests/test_kernel_tile_filter.py runs the kernel itself (interpreter) against the same bound.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from grpo_studio.kernels.loss import configs as cfgs

RULES = {"per-entry 2^-12 (old)": ("max", 2.0 ** -12), "row mass (kernel)": ("mass", cfgs.FILTER_EPS["bf16"])}


def filter_error(h: torch.Tensor, w: torch.Tensor, ids: torch.Tensor, temperature: float, block_n: int,
                 block_v: int, rule: str, eps: float) -> dict:
    hb, wb = h.bfloat16().double(), w.bfloat16().double()
    p = torch.softmax(hb @ wb.T / temperature, -1)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    d = -p
    d[torch.arange(len(ids)), ids] += 1
    n, v = d.shape
    padded = torch.zeros(-(-n // block_n) * block_n, -(-v // block_v) * block_v, dtype=torch.float64)
    padded[:n, :v] = d.abs()
    tiles = padded.view(padded.shape[0] // block_n, block_n, padded.shape[1] // block_v, block_v)
    keep = tiles.amax(dim=(1, 3)) >= eps if rule == "max" else tiles.sum(3).amax(1) >= eps * block_v / v
    mask = keep[:, None, :, None].expand_as(tiles).reshape(padded.shape)[:n, :v]
    full = d @ wb
    rel = ((d * ~mask) @ wb).norm(dim=1) / full.norm(dim=1)
    return {"tiles_skipped": 1 - keep.double().mean().item(), "rel_err_median": rel.median().item(),
            "rel_err_p90": rel.quantile(0.9).item(), "rel_err_max": rel.max().item(),
            "max_mass_lost": (d.abs() * ~mask).sum(1).max().item(), "entropy_median": entropy.median().item()}


def real_inputs(model_path: str, tokens: int, text: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    ids = tok(text, return_tensors="pt").input_ids[:, :tokens + 1]
    with torch.no_grad():
        h = model(ids[:, :-1], output_hidden_states=True).hidden_states[-1][0]
    return h, model.get_output_embeddings().weight.detach(), ids[0, 1:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a Hugging Face model folder")
    p.add_argument("--tokens", type=int, default=384)
    p.add_argument("--text", default="README.md", help="a text file whose first tokens are scored")
    args = p.parse_args(argv)
    h, w, ids = real_inputs(args.model, args.tokens, open(args.text, encoding="utf-8").read())
    results = []
    for temperature in (1.0, 2.0):
        for config in cfgs.all_configs("bf16"):
            bn, bv = config.kwargs["BLOCK_N"], config.kwargs["BLOCK_V"]
            for name, (rule, eps) in RULES.items():
                results.append({"temperature": temperature, "tile": f"{bn}x{bv}", "rule": name,
                                **filter_error(h, w, ids, temperature, bn, bv, rule, eps)})
    print(json.dumps({"model": args.model, "rows": len(ids), "vocab": w.shape[0], "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
