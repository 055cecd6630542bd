"""The fast rollout path's memory on the CPU: the lm_head is applied to 2D last-position rows, because torch's
CPU bf16 matmul copies the whole transposed weight first when handed HF's 3D [B, 1, h] slice (found by
tests/benchmarks/bench_memory_model.py: 445 MiB per prefill at Qwen2.5-1.5B's width)."""
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoConfig, AutoModelForCausalLM

from grpo_studio.engine.rollout.decode import DecodeSettings, decode
from grpo_studio.engine.rollout.sampling import SamplingParams


def peak_bytes(fn) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in prof.profiler.kineto_results.events():
        if event.name() == "[memory]":
            live += event.nbytes()
            peak = max(peak, live)
    return peak


def test_one_row_decode_never_copies_the_output_projection():
    config = AutoConfig.for_model("llama", hidden_size=256, intermediate_size=512, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=32000,
                                  tie_word_embeddings=False)
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    lm.requires_grad_(False)  # the frozen base under the adapter (a weight that requires grad is not copied)
    head_bytes = lm.lm_head.weight.numel() * lm.lm_head.weight.element_size()  # 16 MB
    prompt = torch.randint(0, 32000, (1, 12))
    settings = DecodeSettings(4, (), 0, SamplingParams(greedy=True))
    with torch.no_grad():
        baseline = lm(input_ids=prompt).logits[0, -1].argmax()  # HF's own full forward: the same first token
        peak = peak_bytes(lambda: decode(lm, prompt, torch.ones_like(prompt), torch.tensor([0]), settings))
        ids = decode(lm, prompt, torch.ones_like(prompt), torch.tensor([0]), settings)
    assert ids[0, 0] == baseline
    # The cache, a few [1, 12, 512] activations and [1, 32000] fp32 logits: far below one copy of the head.
    assert peak < head_bytes / 4, (peak, head_bytes)
