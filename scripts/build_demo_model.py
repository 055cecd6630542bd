"""Build the embedded demo reproducibly: resources/demo/{task.jsonl, model/}.

    .venv/bin/python scripts/build_demo_model.py            # rebuild (a few seconds on a CPU)
    .venv/bin/python scripts/build_demo_model.py --check    # also sample it and print reward rates

The model is a tiny Llama (hidden 64, 2 layers, tied embeddings, ~130k parameters) with a character
tokenizer. A short supervised warm-up teaches it the answer format and to answer *near* the true sum:
about 20% exactly right, the rest the sum +-1..3, and a few answers with a broken format. The wrong answers
must depend on the prompt: with uniformly random ones the model learns to ignore the prompt, GRPO
collapses onto the most common sum, every group gets equal rewards and learning stops. Starting from near
misses, GRPO has something to sharpen and the demo's reward visibly climbs from ~0.2.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "demo"
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
SYMBOLS = [str(d) for d in range(10)] + ["+", "=", "<answer>", "</answer>"]
MAX_OPERAND = 9
P_CORRECT = 0.2  # share of exactly right answers in the warm-up
P_BROKEN = 0.1  # share of answers with a broken format (a missing tag)
SEED = 0


def task_rows() -> list[dict]:
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b)}
            for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]
    random.Random(SEED).shuffle(rows)
    return rows


def build_tokenizer():
    """Character-level: one token per digit and sign; the answer tags are plain vocabulary entries."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + SYMBOLS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"</?answer>|."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # join characters without spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>", model_max_length=64)
    fast.padding_side = "left"
    return fast


def build_model(vocab_size: int, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(SEED)
    return LlamaForCausalLM(config)


def warmup_completion(a: int, b: int, rng: random.Random) -> str:
    total = a + b
    if rng.random() < P_CORRECT:
        value = total
    else:
        value = total + rng.choice([-3, -2, -1, 1, 2, 3])
        value = abs(value)  # a near miss, never negative
    answer = f"<answer>{value}</answer>"
    if rng.random() < P_BROKEN:
        answer = rng.choice([answer.replace("<answer>", ""), answer.replace("</answer>", "")])
    return answer


def warm_up(model, tokenizer, steps: int = 500, batch: int = 256, lr: float = 3e-3) -> None:
    """Supervised next-token training on the completion tokens only."""
    import torch

    rng = random.Random(SEED)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for step in range(steps):
        seqs, labels = [], []
        for _ in range(batch):
            a, b = rng.randint(0, MAX_OPERAND), rng.randint(0, MAX_OPERAND)
            prompt = tokenizer.encode(f"{a}+{b}=", add_special_tokens=False)
            completion = tokenizer.encode(warmup_completion(a, b, rng), add_special_tokens=False) + [eos]
            seqs.append(prompt + completion)
            labels.append([-100] * len(prompt) + completion)
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        target = torch.tensor([s + [-100] * (width - len(s)) for s in labels])
        mask = (torch.arange(width)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]).long()
        loss = model(input_ids=ids, attention_mask=mask, labels=target).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 100 == 0 or step == steps - 1:
            print(f"warm-up step {step:4d}  loss {loss.item():.3f}", file=sys.stderr)


def check(model, tokenizer, samples: int = 8) -> dict:
    """Sample every task prompt a few times; the share of right sums and of clean formats."""
    import re

    import torch

    rows = task_rows()
    prompts = [r["prompt"] for r in rows for _ in range(samples)]
    answers = [r["answer"] for r in rows for _ in range(samples)]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    model.eval()
    with torch.no_grad():
        out = model.generate(**batch, do_sample=True, max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    right = sum(re.fullmatch(rf"<answer>{a}</answer>", t) is not None for t, a in zip(texts, answers))
    clean = sum(re.fullmatch(r"<answer>\d+</answer>", t) is not None for t in texts)
    return {"correct": right / len(texts), "format": clean / len(texts), "example": texts[:4]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="sample the built model and print rates")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # same thread count, same float sums: the same bytes on every machine
    torch.manual_seed(SEED)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "task.jsonl", "w", encoding="utf-8") as handle:
        for row in task_rows():
            handle.write(json.dumps(row) + "\n")
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), tokenizer)
    warm_up(model, tokenizer)
    model_dir = args.out / "model"
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(model_dir))
    print(f"wrote {model_dir} ({sum(p.numel() for p in model.parameters())} parameters)", file=sys.stderr)
    if args.check:
        torch.manual_seed(SEED)
        print(json.dumps(check(model, tokenizer)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
