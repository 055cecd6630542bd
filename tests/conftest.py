import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    from tiny_models import build_model

    path = tmp_path_factory.mktemp("tiny-llama")
    build_model(path, "llama")
    return path


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory):
    from tiny_models import build_model

    path = tmp_path_factory.mktemp("tiny-qwen2")
    build_model(path, "qwen2")
    return path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """A private runs folder for the test (the store never touches the user's real runs)."""
    path = tmp_path / "runs"
    monkeypatch.setenv("GRPO_STUDIO_RUNS_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def four_bit_on_cpu():
    """Skips the test where this bitsandbytes build cannot quantize to NF4 and multiply on the CPU (a
    capability of the build, asked once); any other failure of the test's own 4-bit loading stays a failure."""
    import bitsandbytes as bnb
    import torch

    try:
        weight = torch.randn(32, 64)
        packed, state = bnb.functional.quantize_4bit(weight, quant_type="nf4")
        bnb.matmul_4bit(torch.randn(2, 64), packed.t(), quant_state=state)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"this bitsandbytes build has no CPU 4-bit (NF4) support: {exc}")
