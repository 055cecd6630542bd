"""The loss options in a run: every new loss type trains, the fast sampler hands over its own log-probs
when it samples in another dtype, the mismatch reaches each step's metrics, and the adaptive entropy
controller's state makes a resumed run end exactly as an uninterrupted one."""
from __future__ import annotations

import torch

from grpo_studio.engine.checkpoints import checkpoint as ckpt
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.rollout.generation import generate
from grpo_studio.engine.run.runner import run_engine
from grpo_studio.engine.rollout.sampling import SamplingParams
from test_checkpoint_resume import adapter_weights, small_config
from test_loop import StopAfter, metrics_of
from test_rollout_fast import TEXTS, _lora_model


def test_fast_sampler_returns_its_own_logprobs_when_its_dtype_differs(tmp_path):
    model, tok = _lora_model(tmp_path, "qwen2")
    prompts = [tok(t)["input_ids"] for t in TEXTS]
    torch.manual_seed(0)
    out = generate(model, tok, prompts, num_generations=3, max_completion_length=8,
                   sampling=SamplingParams(temperature=0.8), generation_dtype="bfloat16")
    assert out.sampling_logps is not None and out.sampling_logps.shape == out.completion_ids.shape
    assert torch.all(out.sampling_logps[out.completion_mask == 0] == 0)
    # the same tokens scored by the training forward (fp32, LoRA unmerged), as the loss scores them
    ids = torch.cat([out.prompt_ids, out.completion_ids], 1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.cat([out.prompt_mask, out.completion_mask], 1)).logits
    width = out.completion_ids.shape[1]
    train = torch.log_softmax(logits[:, -width - 1:-1].float() / 0.8, -1).gather(-1, out.completion_ids[..., None])
    on = out.completion_mask.bool()
    diff = (out.sampling_logps - train.squeeze(-1))[on].abs()
    assert diff.max() < 0.1 and diff.max() > 0  # bf16's rounding: close, and really measured, not a copy
    torch.manual_seed(0)
    same_dtype = generate(model, tok, prompts, num_generations=3, max_completion_length=8,
                          sampling=SamplingParams(temperature=0.8), generation_dtype="float32")
    assert same_dtype.sampling_logps is None  # nothing to correct: the loss's own log-probs are the sampler's


def test_every_new_loss_type_trains(tmp_path):
    for loss_type, level in (("cispo", "token"), ("sapo", "token"), ("luspo", "sequence"), ("vespo", "token")):
        config = small_config(steps=2)
        config.grpo.loss_type, config.grpo.importance_sampling_level = loss_type, level
        config.grpo.epsilon_high = 5.0 if loss_type == "cispo" else 0.28
        config.grpo.vllm_importance_sampling_mode = "token_mask"  # VESPO's requirement (validated in the config)
        run = tmp_path / loss_type
        assert run_engine(config, run, quiet=True) == 0, loss_type
        metrics = metrics_of(run)
        assert [m["step"] for m in metrics] == [1, 2] and all(m["grad_norm"] > 0 for m in metrics), loss_type
        assert any(v.abs().sum() > 0 for k, v in adapter_weights(run).items() if "lora_B" in k)


def test_bf16_sampling_reports_the_mismatch_and_corrects_it(tmp_path):
    config = small_config(steps=2)
    config.grpo.generation_dtype = "bfloat16"  # the demo trains in fp32
    config.grpo.vllm_importance_sampling_mode = "token_truncate"
    config.grpo.vllm_importance_sampling_clip_max = 1.0001  # so some tokens are capped
    assert run_engine(config, tmp_path / "on", quiet=True) == 0
    signals = [m["signal"] for m in metrics_of(tmp_path / "on")]
    assert all(s["sampler_kl"] >= 0 and 0 < s["sampler_capped"] < 1 for s in signals), signals
    config.grpo.vllm_importance_sampling_correction = False
    assert run_engine(config, tmp_path / "off", quiet=True) == 0
    assert all("sampler_kl" not in m["signal"] for m in metrics_of(tmp_path / "off"))
    a, b = adapter_weights(tmp_path / "on"), adapter_weights(tmp_path / "off")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the correction changed the update


def _adaptive_config():
    config = small_config(steps=6)
    grpo = config.grpo
    grpo.use_adaptive_entropy, grpo.entropy_coef, grpo.entropy_coef_delta = True, 0.01, 0.02
    grpo.entropy_target = 100.0  # always above the entropy: the coefficient rises every step
    grpo.top_entropy_quantile = 0.5
    return config


def test_adaptive_entropy_is_exact_across_resume(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert run_engine(_adaptive_config(), straight, quiet=True) == 0
    assert run_engine(_adaptive_config(), interrupted, control=StopAfter(interrupted, 3), quiet=True) == 0
    state = torch.load(ckpt.latest_checkpoint(RunPaths(interrupted).checkpoints) / ckpt.STATE_FILE,
                       weights_only=False)
    assert abs(state["entropy_control"]["entropy_coef"] - (0.01 + 3 * 0.02)) < 1e-9
    assert run_engine(_adaptive_config(), interrupted, resume=True, quiet=True) == 0
    a, b = adapter_weights(straight), adapter_weights(interrupted)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    coefs = [m["signal"]["entropy_coef"] for m in metrics_of(straight)]
    # none before the first measurement, then the controller's rising coefficient, step by step
    assert coefs[0] == 0.0 and all(abs(c - (0.01 + i * 0.02)) < 1e-9 for i, c in enumerate(coefs[1:], 1))
    events = [e for e in read_events(RunPaths(interrupted).events) if e["type"] == "metrics"]
    assert [e["signal"]["entropy_coef"] for e in events] == coefs
