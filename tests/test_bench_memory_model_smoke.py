"""The memory-model benchmark runs the engine's training and generation path at a tiny size, reads each phase's
bytes from the profiler's allocation timeline, and sets them beside the estimator's components."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_memory_model.py"
COMPONENTS = {"weights", "lora_and_optimizer", "activations", "logits", "recompute", "kv_and_generation"}


@pytest.mark.slow  # builds a tiny model, one training step and one generation under the profiler
def test_smoke_measures_every_component_beside_the_estimate():
    proc = subprocess.run([sys.executable, str(BENCH), "--arch", "tiny", "--threads", "1"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = json.loads(proc.stdout)["results"]
    assert set(result["components"]) == COMPONENTS
    for name, c in result["components"].items():
        assert c["measured"] > 0 and c["estimated"] > 0, name
    # The weights are exact arithmetic of the same tensors: the profiler must see exactly those bytes.
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {"hidden_size": 64, "intermediate_size": 176, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "vocab_size": 512, "tie_word_embeddings": False, "num_hidden_layers": 2}
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("llama", **fields), dtype=torch.bfloat16)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert params <= result["components"]["weights"]["measured"] <= params + buffers + 4096
    assert "| tiny |" in proc.stderr
