"""What the GPU suite's parts share: random-weight models of real architectures with real tokenizers, the run
config they train with, the GPU memory readers (torch and nvidia-smi), and median/spread statistics.

Models get random weights (no download): the shapes come from resources/architectures.json, the tokenizer from
llama.cpp's vocab-only GGUF files ($LLAMA_CPP_DIR/models, as in CI), so vocabularies, chat templates and
therefore memory are the real ones. `generation_config.json` suppresses the EOS token (`suppress_tokens`): it
is never sampled, every completion runs to full length, and the parts check that it did.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TESTS = ROOT / "tests"
LLAMA_CPP_FALLBACK = ROOT / ".ci" / "cache" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
TOKENIZERS = {"qwen2": "ggml-vocab-qwen2.gguf", "llama": "ggml-vocab-llama-bpe.gguf"}
SHARD_BYTES = 2 << 30


class Skip(Exception):
    """A part (or one figure) that cannot run here; the message is the reason shown in the report."""


def stats(values: list[float]) -> dict:
    """Median and spread (min, max) of repeated measurements (None entries: not measured here)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


# ------------------------------------------------------------------------------------------- tokenizers
def gguf_tokenizer_path(family: str) -> Path | None:
    """llama.cpp's vocab GGUF for `family` ($LLAMA_CPP_DIR, then the CI cache in the checkout), or None."""
    name = TOKENIZERS[family]
    for base in (os.environ.get("LLAMA_CPP_DIR"), LLAMA_CPP_FALLBACK):
        if base and (Path(base) / "models" / name).is_file():
            return Path(base) / "models" / name
    return None


def load_tokenizer(family: str, tiny: bool):
    """The real tokenizer (full runs), or the tests' tiny BPE tokenizer (smoke: loading a 150k-token GGUF
    vocabulary takes longer than the whole smoke run)."""
    if tiny:
        import sys
        import tempfile

        sys.path.insert(0, str(TESTS))
        from tiny_models import build_tokenizer

        return build_tokenizer(tempfile.mkdtemp(prefix="suite-tok-"))
    path = gguf_tokenizer_path(family)
    if path is None:
        raise Skip(f"no {TOKENIZERS[family]}: set LLAMA_CPP_DIR to a llama.cpp checkout (`python3 bootstrap.py "
                   "test` fetches one into .ci/cache)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# ------------------------------------------------------------------------------------------- models
def architecture(hub_id: str, tiny: bool) -> dict:
    """config.json fields of `hub_id` from the offline table; `tiny` keeps the family but shrinks it."""
    from grpo_studio.engine.common.model_configs import table_lookup

    entry = table_lookup(hub_id)
    if entry is None:
        raise Skip(f"{hub_id} is not in resources/architectures.json")
    entry.pop("hub_id", None)
    if tiny:
        entry.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16)
    return entry


def build_random_model(folder: Path, hub_id: str, family: str, tiny: bool, device: str) -> Path:
    """A saved model of `hub_id`'s architecture with random weights (N(0, 0.02), norms 1, biases 0) and the
    family's real tokenizer; reused when already built with the same recipe."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    recipe = json.dumps({"hub_id": hub_id, "tiny": tiny, "version": 2})
    if (folder / "recipe.json").is_file() and (folder / "recipe.json").read_text() == recipe:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tokenizer = load_tokenizer(family, tiny)
    arch = architecture(hub_id, tiny)
    model_type = arch.pop("model_type")
    if tiny:
        arch["vocab_size"] = len(tokenizer)
    arch["vocab_size"] = max(arch["vocab_size"], len(tokenizer))
    eos = tokenizer.eos_token_id
    config = AutoConfig.for_model(model_type, **arch, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                  pad_token_id=tokenizer.pad_token_id, dtype="bfloat16")
    with torch.device("meta"):
        shapes = {name: (tuple(t.shape)) for name, t in AutoModelForCausalLM.from_config(config).state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    _write_random_shards(folder, shapes, device)
    config.save_pretrained(str(folder))
    GenerationConfig(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                     suppress_tokens=[eos]).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / "recipe.json").write_text(recipe)
    return folder


def _write_random_shards(folder: Path, shapes: dict[str, tuple], device: str) -> None:
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator(device).manual_seed(0)
    shards: list[dict] = [{}]
    size = 0
    for name, shape in shapes.items():
        if len(shape) == 1:
            tensor = torch.ones(shape) if name.endswith("norm.weight") else torch.zeros(shape)
        else:
            tensor = torch.randn(shape, generator=generator, device=device, dtype=torch.bfloat16) * 0.02
        tensor = tensor.to("cpu", torch.bfloat16).contiguous()
        if size + tensor.numel() * 2 > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += tensor.numel() * 2
    index = {"metadata": {"total_size": sum(t.numel() * 2 for s in shards for t in s.values())}, "weight_map": {}}
    for i, shard in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / file), metadata={"format": "pt"})
        index["weight_map"].update({name: file for name in shard})
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def write_dataset(path: Path, rows: int = 64) -> Path:
    """Arithmetic questions with answers (the reward has something to score; memory does not care)."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            a, b = 3 + i % 17, 5 + i % 11
            handle.write(json.dumps({"prompt": f"Question: what is {a} + {b}? Think, then answer.",
                                     "answer": str(a + b)}) + "\n")
    return path


def train_config(model_dir: Path, data: Path, *, completion: int, generations: int = 8, steps: int = 3,
                 micro_batch: int = 8, offload: str = "auto", prompt: int = 64):
    """The run config the parts train with: 4-bit + LoRA r=16 (all-linear), one prompt x G completions.
    On the CPU (smoke) the base stays 16-bit: bitsandbytes 0.50 repacks 4-bit weights for CPU inference
    when generation switches to eval, and training a model with biases (Qwen2) then fails in its in-place
    bias add."""
    from grpo_studio.engine.common.config import DatasetConfig, TrainConfig

    config = TrainConfig(model=str(model_dir), load_in_4bit=cuda_available(), offload_activations=offload)
    config.dataset = DatasetConfig(path=str(data), prompt_column="prompt", answer_column="answer")
    config.lora.r, config.lora.alpha = 16, 32
    config.grpo.num_generations, config.grpo.max_completion_length = generations, completion
    config.grpo.max_prompt_length = prompt
    config.batch.prompts_per_step, config.batch.micro_batch_size = 1, micro_batch
    config.max_steps, config.checkpoint_every, config.log_samples_every = steps, 0, 0
    return config


def estimate(config, model_dir: Path) -> dict:
    """`grpo-studio estimate` for exactly this config (the same function the CLI prints)."""
    from grpo_studio.engine.common.estimate import estimate_run, load_model_config

    return estimate_run(config, load_model_config(str(model_dir)), gpu=None)


# ------------------------------------------------------------------------------------------- GPU memory
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def require_cuda(what: str) -> None:
    if not cuda_available():
        raise Skip(f"{what} needs a CUDA GPU; none here")


def clean_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class NvidiaSmiPeak:
    """Polls nvidia-smi in a thread: the highest memory this process (by pid) and the whole GPU used."""

    def __init__(self, interval_s: float = 0.1, pid: int | None = None) -> None:
        self.exe = shutil.which("nvidia-smi")
        self.pid = pid or os.getpid()
        self.interval = interval_s
        self.process_peak: int | None = None
        self.device_peak: int | None = None
        self.device_start: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "NvidiaSmiPeak":
        if self.exe:
            self.device_start = device_used()
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.is_set():
            mine = process_used(self.pid)
            if mine is not None:
                self.process_peak = max(self.process_peak or 0, mine)
            used = device_used()
            if used is not None:
                self.device_peak = max(self.device_peak or 0, used)
            time.sleep(self.interval)

    def summary(self) -> dict:
        return {"process_peak": self.process_peak, "device_peak": self.device_peak,
                "device_at_start": self.device_start}


def _smi(*query: str) -> list[list[str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    target = ["-i", visible] if visible and visible.isdigit() else ["-i", "0"]
    try:
        out = subprocess.run([exe, *query, "--format=csv,noheader,nounits", *target], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    return [[p.strip() for p in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]


def process_used(pid: int) -> int | None:
    """MiB -> bytes this pid holds on the GPU, per nvidia-smi (None when it does not list it)."""
    for row in _smi("--query-compute-apps=pid,used_memory"):
        if len(row) == 2 and row[0] == str(pid) and row[1].isdigit():
            return int(row[1]) << 20
    return None


def device_used() -> int | None:
    rows = _smi("--query-gpu=memory.used")
    return int(float(rows[0][0])) << 20 if rows and rows[0] and rows[0][0].replace(".", "").isdigit() else None


def gpu_record() -> dict:
    """GPU name, driver, memory and compute capability (None fields without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return {"name": None, "driver": None, "total": None, "capability": None}
    rows = _smi("--query-gpu=driver_version")
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "driver": rows[0][0] if rows else None, "total": props.total_memory,
            "capability": f"{props.major}.{props.minor}"}
