"""Small GGUF model files written with the `gguf` library, for the GGUF-in tests (no downloads).

The tokenizer is real: llama.cpp's vocab file for Llama's SentencePiece tokenizer (its test inputs and the
token ids llama.cpp produces for them sit beside it). The weights are random, laid out as llama.cpp's
converter writes a Llama: GGUF tensor names, Q8_0 matrices, F32 norms.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

LLAMA_CPP = Path(os.environ.get("LLAMA_CPP_DIR")  # else where `bootstrap.py test` fetches it
                 or Path(__file__).resolve().parents[1] / ".ci/cache/llama_cpp_python-0.3.36/vendor/llama.cpp")
VOCAB = LLAMA_CPP / "models" / "ggml-vocab-llama-spm.gguf"
HIDDEN, LAYERS, HEADS, FFN = 64, 2, 4, 128


def vocab_available() -> bool:
    return VOCAB.is_file()


def write_llama_gguf(path: Path, architecture: str = "llama", matrix_type: str = "Q8_0", seed: int = 0) -> Path:
    """A 2-layer Llama GGUF with the llama-spm tokenizer; `matrix_type` is the weight matrices' tensor type."""
    import gguf

    vocab = gguf.GGUFReader(str(VOCAB))
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny-test-llama")
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    for key, field in vocab.fields.items():  # the tokenizer exactly as llama.cpp wrote it
        if key.startswith("tokenizer."):
            value = field.contents()
            writer.add_key_value(key, value, field.types[0], sub_type=field.types[-1] if len(field.types) > 1 else None)
    n_vocab = len(vocab.fields["tokenizer.ggml.tokens"].data)
    rng = np.random.default_rng(seed)
    qtype = gguf.GGMLQuantizationType[matrix_type]

    def matrix(name: str, rows: int, cols: int) -> None:
        data = (rng.standard_normal((rows, cols)) * 0.05).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.Q8_K:  # no quantizer in gguf-py: raw zero blocks of its size
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            writer.add_tensor(name, np.zeros((rows, cols // block * size), np.uint8), raw_dtype=qtype)
            return
        writer.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(HIDDEN, np.float32))

    matrix("token_embd.weight", n_vocab, HIDDEN)
    for i in range(LAYERS):
        norm(f"blk.{i}.attn_norm.weight")
        norm(f"blk.{i}.ffn_norm.weight")
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            matrix(f"blk.{i}.{part}.weight", HIDDEN, HIDDEN)
        matrix(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        matrix(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        matrix(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    norm("output_norm.weight")  # no output.weight: tied embeddings, like SmolLM2
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def llama_cpp_token_cases(limit: int = 12) -> list[tuple[str, list[int]]]:
    """(text, token ids llama.cpp gives) for the plain ASCII test inputs beside the vocab file."""
    inputs = (VOCAB.parent / (VOCAB.name + ".inp")).read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")
    outputs = (VOCAB.parent / (VOCAB.name + ".out")).read_text(encoding="utf-8").splitlines()
    cases = [(text, [int(t) for t in ids.split()]) for text, ids in zip(inputs, outputs)]
    return [(t, ids) for t, ids in cases if t.strip() and t.isascii() and t == t.strip()][:limit]
