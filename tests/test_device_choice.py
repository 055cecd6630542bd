"""dtype auto picks bf16 only on GPUs that compute it natively; offload auto asks the plan without offloading,
against the memory this process could use (checked with torch.cuda's queries mocked: no GPU needed)."""
import dataclasses

import pytest
import torch

from grpo_studio.engine.model import device_choice
from grpo_studio.engine.model import policy as pm
from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.estimate import FIT_FRACTION, load_model_config, needs_offload, settings_from_config
from grpo_studio.engine.common.estimate_model import CUDA_CONTEXT, GIB, Arch, grpo_studio_plan

CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize("capability, expected", [((7, 0), torch.float16), ((7, 5), torch.float16),
                                                  ((8, 0), torch.bfloat16), ((8, 6), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16), ((12, 0), torch.bfloat16)])
def test_auto_dtype_follows_compute_capability_not_emulated_bf16(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what sm_70/75 also say
    assert pm.resolve_dtype("auto", CUDA) == expected
    assert pm.resolve_dtype("float32", CUDA) == torch.float32  # an explicit dtype is never second-guessed


def test_auto_dtype_on_the_cpu_is_float32():
    assert pm.resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert device_choice.native_bf16(torch.device("cpu")) is False


def long_config(offload="auto") -> TrainConfig:
    config = TrainConfig(model="Qwen/Qwen2.5-1.5B-Instruct", load_in_4bit=True, offload_activations=offload)
    config.grpo.max_completion_length = 4096
    config.batch.micro_batch_size = 8
    return config


def plan_total(config: TrainConfig, offload: bool) -> int:
    settings = dataclasses.replace(settings_from_config(config), offload=offload)
    return grpo_studio_plan(Arch.from_config(load_model_config(config.model)), settings)["total"]


def test_needs_offload_asks_the_plan_without_offloading():
    config = long_config()
    on, off = plan_total(config, True), plan_total(config, False)
    assert off > on  # offloading saves the layer-boundary checkpoints
    between = {"name": "g", "total": 80 * GIB, "free": int((on + off) / 2 / FIT_FRACTION)}
    # The offloaded plan fits here (what the old check looked at), the plain one does not: offload.
    assert needs_offload(config, between)
    roomy = {"name": "g", "total": 80 * GIB, "free": int(off / FIT_FRACTION) + GIB}
    assert not needs_offload(config, roomy)


def test_gpu_budget_counts_what_this_process_already_holds(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GIB, 24 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 5 * GIB)  # the loaded weights
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Mock GPU")
    assert device_choice.gpu_budget(CUDA) == {"name": "Mock GPU", "total": 24 * GIB,
                                              "free": 8 * GIB + CUDA_CONTEXT}


def test_should_offload_auto_decides_from_the_budget(monkeypatch):
    config = long_config()
    on, off = plan_total(config, True), plan_total(config, False)
    budget = {"name": "g", "total": 80 * GIB, "free": int((on + off) / 2 / FIT_FRACTION)}
    monkeypatch.setattr(device_choice, "gpu_budget", lambda device: budget)
    assert device_choice.should_offload(config, CUDA) is True
    budget["free"] = int(off / FIT_FRACTION) + GIB
    assert device_choice.should_offload(config, CUDA) is False
    assert device_choice.should_offload(long_config("on"), CUDA) is True
    assert device_choice.should_offload(long_config("off"), CUDA) is False
    assert device_choice.should_offload(config, torch.device("cpu")) is False  # nothing to offload to


def test_should_offload_survives_an_estimator_failure(monkeypatch):
    def broken(device):
        raise RuntimeError("no driver")

    monkeypatch.setattr(device_choice, "gpu_budget", broken)
    assert device_choice.should_offload(long_config(), CUDA) is False
