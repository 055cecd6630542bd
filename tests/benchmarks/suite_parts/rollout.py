"""Part 5: completion tokens/s of the engine's generation entry point (`grpo_studio.engine.rollout.generation.generate`,
whatever path it takes) against plain Hugging Face `generate` on the same policy, at part 2's settings
(1 prompt x G=8, 512 new tokens, EOS suppressed). The two alternate; each is warmed up first."""
from __future__ import annotations

import time

from suite_parts.common import clean_cuda, cuda_available, ratio, stats, train_config, write_dataset
from suite_parts.training import QWEN, model_dir


def run(workdir, smoke: bool, deadline: float) -> dict:
    import torch

    from grpo_studio.engine.model import policy as policy_model
    from grpo_studio.engine.rollout import generation as rollout
    from grpo_studio.engine.data.dataset import load_examples

    folder = model_dir(workdir, QWEN, smoke)
    completion, generations = (8 if smoke else 512), 8
    config = train_config(folder, write_dataset(workdir / "data.jsonl"), completion=completion)
    path, base = policy_model.resolve_model_path(config.model)
    tokenizer = policy_model.load_tokenizer(path)
    policy = policy_model.load_policy(config, path, base, tokenizer)
    prompts = [load_examples(config, tokenizer)[0][0].prompt_ids]
    device = policy.device

    def engine_path(new_tokens: int = completion) -> int:
        out = rollout.generate(policy.model, tokenizer, prompts, num_generations=generations,
                               max_completion_length=new_tokens, device=device)
        return int(out.completion_mask.sum())

    def plain_hf(new_tokens: int = completion) -> int:
        ids, mask = rollout.left_pad([p for p in prompts for _ in range(generations)], tokenizer.pad_token_id, device)
        policy.model.eval()
        with torch.no_grad():
            out = policy.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                        top_p=1.0, top_k=0, max_new_tokens=new_tokens,
                                        pad_token_id=tokenizer.pad_token_id)
        policy.model.train()
        return int(out.shape[0] * (out.shape[1] - ids.shape[1]))  # EOS suppressed: every row runs full length

    contenders = {"engine": engine_path, "plain_hf_generate": plain_hf}
    results = {name: {"tokens_per_s": [], "tokens": []} for name in contenders}
    for fn in contenders.values():  # warm-up: kernels, caches (short: the budget is for the timed rounds)
        fn(min(completion, 16))
    for round_ in range(3):  # the first round always runs, further ones while the budget lasts
        if round_ and time.monotonic() > deadline:
            break
        for name, fn in contenders.items():
            clean_cuda()
            started = time.perf_counter()
            tokens = fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            results[name]["tokens_per_s"].append(tokens / (time.perf_counter() - started))
            results[name]["tokens"].append(tokens)
    del policy
    clean_cuda()
    summary = {name: {"tokens_per_s": stats(r["tokens_per_s"]), "completion_tokens": r["tokens"]}
               for name, r in results.items()}
    return {"device": "cuda" if cuda_available() else "cpu",
            "settings": {"prompts": 1, "generations": generations, "new_tokens": completion,
                         "load_in_4bit": config.load_in_4bit},
            "contenders": summary,
            "ratios": {"engine_vs_plain_hf": ratio(summary["engine"]["tokens_per_s"]["median"],
                                                   summary["plain_hf_generate"]["tokens_per_s"]["median"])}}
