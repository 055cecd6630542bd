"""Real architectures on the CPU, in 4-bit NF4 and in fp32: one GRPO step per family (generation, the fused
loss, the reference pass, a checkpoint), then GGUF export (and, for Qwen2, chat) from the run.

Shapes come from resources/architectures.json at reduced depth and width (2 layers, hidden 64) with the
family's real vocabulary size, biases and embedding tying; weights are random. Tokenizers are the real
ones, read from llama.cpp's vocab-only GGUF test files ($LLAMA_CPP_DIR/models/ggml-vocab-*.gguf) and
converted once (kept in pytest's cache folder, because the conversion of a 150k vocabulary takes ~30 s).
"""
import json
import os
from pathlib import Path

import pytest

from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.common.runs import RunPaths

ROOT = Path(__file__).resolve().parent.parent
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP_DIR") or ROOT / ".ci/cache/llama_cpp_python-0.3.36/vendor/llama.cpp")

# The Llama 3 prompt format (llama-bpe.gguf carries no template): header ids around the role, <|eot_id|> after.
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                   "{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
FAMILIES = {
    # family: (gguf vocab, architectures.json entry, end-of-turn token, what the generation prompt ends with)
    "qwen2": ("qwen2", "Qwen/Qwen2.5-0.5B", "<|im_end|>", "<|im_start|>assistant\n"),
    "llama3": ("llama-bpe", "meta-llama/Llama-3.1-8B", "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "phi3": ("phi-3", "microsoft/Phi-3-mini-4k-instruct", "<|end|>", "<|assistant|>\n"),
    # Gemma-2's own vocabulary is not among llama.cpp's test files; Gemma 4's (262k, its turn markers) is.
    "gemma2": ("gemma-4", "google/gemma-2-2b", "<turn|>", "<|turn>model\n"),
}
CONFIG_CLASSES = {"qwen2": "Qwen2Config", "llama": "LlamaConfig", "phi3": "Phi3Config", "gemma2": "Gemma2Config"}


def gguf_path(vocab: str) -> Path:
    path = LLAMA_CPP / "models" / f"ggml-vocab-{vocab}.gguf"
    if not path.is_file():
        pytest.skip(f"{path.name} not found: set LLAMA_CPP_DIR to a llama.cpp checkout (`python3 bootstrap.py test` fetches one)")
    return path


def real_tokenizer(vocab: str, cache: Path):
    """The GGUF file's tokenizer as a transformers tokenizer, converted once and kept in `cache`."""
    import transformers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    source = gguf_path(vocab)
    folder = cache / f"{vocab}-{source.stat().st_size}-{transformers.__version__}"
    if (folder / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(folder))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    except Exception:  # noqa: BLE001 - gemma-4.gguf: its model config (per-layer kv heads) fails to parse
        tokenizer = transformers.GemmaTokenizerFast.from_pretrained(str(source.parent), gguf_file=source.name)
    tokenizer.save_pretrained(str(folder))
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def architecture(hub_id: str) -> dict:
    table = json.loads((ROOT / "resources" / "architectures.json").read_text())["models"]
    return dict(next(entry for entry in table if entry["hub_id"] == hub_id)["config"])


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory, pytestconfig):
    built: dict[str, Path] = {}
    # converted tokenizers are kept in pytest's cache between runs (a fresh folder with -p no:cacheprovider)
    cache = (Path(pytestconfig.cache.mkdir("gguf-tokenizers")) if getattr(pytestconfig, "cache", None)
             else tmp_path_factory.mktemp("gguf-tokenizers"))

    def build(family: str) -> Path:
        if family in built:
            return built[family]
        import torch
        import transformers

        vocab, hub_id, end_of_turn, _ = FAMILIES[family]
        tokenizer = real_tokenizer(vocab, cache)
        if family == "llama3":
            tokenizer.chat_template = LLAMA3_TEMPLATE
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        real = architecture(hub_id)
        eot = tokenizer.convert_tokens_to_ids(end_of_turn)
        heads, kv = 4, (4 if real["num_key_value_heads"] == real["num_attention_heads"] else 2)
        config = getattr(transformers, CONFIG_CLASSES[real["model_type"]])(
            vocab_size=max(real["vocab_size"], len(tokenizer)), hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv, head_dim=16,
            max_position_embeddings=512, tie_word_embeddings=real["tie_word_embeddings"],
            bos_token_id=tokenizer.bos_token_id, eos_token_id=[tokenizer.eos_token_id, eot],
            pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
        folder = tmp_path_factory.mktemp(family)
        model.save_pretrained(str(folder))
        model.generation_config.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
        built[family] = folder
        return folder

    return build


def chat_dataset(folder: Path) -> Path:
    path = folder / "chat.jsonl"
    rows = [{"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}], "answer": str(a + b)}
            for a, b in ((2, 3), (4, 1))]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("four_bit", [True, False], ids=["nf4", "fp32"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_grpo_step(family, four_bit, family_dir, tmp_path):
    from grpo_studio.engine.common.config import TrainConfig

    folder = family_dir(family)
    config = TrainConfig(model=str(folder), device="cpu", dtype="float32", load_in_4bit=four_bit, max_steps=1,
                         checkpoint_every=1, log_samples_every=1, seed=1)
    config.lora.r = 4
    config.dataset.path, config.dataset.prompt_column = str(chat_dataset(tmp_path)), "prompt"
    config.grpo.num_generations, config.grpo.max_prompt_length, config.grpo.max_completion_length = 2, 64, 6
    config.grpo.beta = 0.04  # the reference pass (adapter off) runs too
    config.batch.prompts_per_step, config.batch.micro_batch_size = 2, 2
    run = tmp_path / "run"
    assert run_engine(config, run, quiet=True) == 0, [e for e in read_events(RunPaths(run).events) if e["type"] == "error"]
    events = list(read_events(RunPaths(run).events))
    metrics = [e for e in events if e["type"] == "metrics"]
    assert len(metrics) == 1 and metrics[0]["loss"] is not None and metrics[0]["kl"] is not None
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [1]
    sample = next(e for e in events if e["type"] == "sample")
    assert sample["prompt"] and isinstance(sample["completion"], str)
    assert events[-1]["reason"] == "finished"
    if not four_bit:
        export_and_chat(run, tmp_path, chat_too=family == "qwen2")  # chat reloads the model: once is enough


def export_and_chat(run: Path, tmp_path: Path, chat_too: bool) -> None:
    from grpo_studio.engine.chat.answers import chat
    from grpo_studio.engine.export.gguf_adapter import export_gguf

    result = export_gguf(run / "adapter", tmp_path / "adapter.gguf", "f16")
    assert result.path.stat().st_size > 0
    if not chat_too:
        return
    said = []
    chat(run, "What is 2 + 3?", emit=said.append, max_new_tokens=4)
    assert [m["side"] for m in said if m["type"] == "answer"] == ["base", "tuned"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_chat_template_renders_and_eos_ends_completions(family, family_dir):
    import torch

    from grpo_studio.engine.model.policy import load_tokenizer
    from grpo_studio.engine.rollout.generation import _eos_ids, completion_mask

    folder = family_dir(family)
    _, _, end_of_turn, prompt_end = FAMILIES[family]
    tokenizer = load_tokenizer(folder)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                         add_generation_prompt=True)
    assert "What is 2 + 3?" in text and prompt_end in text[-len(prompt_end) - 30:]
    from transformers import GenerationConfig

    class Model:  # what rollout reads: the generation config the model folder ships
        generation_config = GenerationConfig.from_pretrained(str(folder))

    eos = _eos_ids(Model(), tokenizer)
    eot = tokenizer.convert_tokens_to_ids(end_of_turn)
    assert eot in eos and tokenizer.eos_token_id in eos
    words = tokenizer.encode("5", add_special_tokens=False)
    ids = torch.tensor([words + [eot] + words, words + words[:1] + words])
    mask = completion_mask(ids, eos)
    assert mask[0].tolist() == [1] * (len(words) + 1) + [0] * len(words)  # ends at the end-of-turn token
    assert mask[1].tolist() == [1] * (2 * len(words) + 1)
    assert tokenizer.decode(ids[0][mask[0].bool()], skip_special_tokens=True).strip() == "5"
