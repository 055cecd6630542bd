"""Tiny Hugging Face models and tokenizers built locally (no downloads), shared by the tests.

`build_tokenizer` trains a small BPE tokenizer with `tokenizers` and gives it a ChatML-style template;
`build_model` saves a randomly initialised model of a real architecture from its config class.
"""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "What is 2 + 3? <think>two plus three is five</think><answer>5</answer>",
    "Solve 12 * 4. The answer is \\boxed{48}. #### 48",
    "The quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9 + - * / = ( )",
    "system user assistant You are a helpful assistant. Think step by step.",
] * 20

ARCHS = {
    "llama": ("LlamaConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "mistral": ("MistralConfig", {}),
    "gemma2": ("Gemma2Config", {"head_dim": 16}),
    "phi3": ("Phi3Config", {"pad_token_id": 0}),
}


def build_tokenizer(path: str | Path, vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<s>"]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>",
                                   bos_token="<s>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))
    return fast


def build_model(path: str | Path, arch: str = "llama", hidden_size: int = 32, layers: int = 2, seed: int = 0,
                vocab_size: int | None = None, tie_word_embeddings: bool = False):
    """A random model of `arch` (llama, qwen2, qwen3, mistral, gemma2, phi3) plus its tokenizer, saved at path."""
    import torch
    import transformers

    path = Path(path)
    tokenizer = build_tokenizer(path)
    class_name, extra = ARCHS[arch]
    config_cls = getattr(transformers, class_name)
    config = config_cls(
        vocab_size=vocab_size or len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        **{"pad_token_id": tokenizer.pad_token_id, **extra},
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(str(path), safe_serialization=True)
    return model, tokenizer
