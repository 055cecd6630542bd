"""Auto-fit: the estimator chooses the micro-batch, generation batch, offloading and 4-bit that fit a card (or
the CPU's RAM), says why, and the engine trains with what it chose; on the CPU a run that cannot fit the RAM
is refused before loading. The issue's two rows are here with their figures."""
import json
from types import SimpleNamespace

import psutil
import pytest

from grpo_studio.cli import main as cli_main
from grpo_studio.engine.train import loop
from grpo_studio.engine.common.config import TrainConfig, config_from_dict, load_config
from grpo_studio.engine.common.errors import EXIT_CODES, ConfigError
from grpo_studio.engine.common.estimate import with_changes
from grpo_studio.engine.common.estimate_model import GIB, Arch
from grpo_studio.engine.common.events import read_events
from grpo_studio.engine.common.fit import _Fitter, fit_config
from grpo_studio.engine.common.model_configs import load_model_config
from grpo_studio.engine.common.runs import RunPaths
from grpo_studio.engine.run.runner import run_engine
from test_checkpoint_resume import small_config


def gpu(gib):
    return {"name": f"{gib} GiB GPU", "free": int(gib * GIB), "kind": "gpu"}


def seed_row():
    """Llama-3.1-8B, 4-bit, 1 prompt x 8 generations, 20,480-token completions (the seed's row)."""
    config = TrainConfig(model="meta-llama/Llama-3.1-8B-Instruct", load_in_4bit=True)
    config.batch.prompts_per_step, config.grpo.num_generations = 1, 8
    config.grpo.max_completion_length = 20480
    return config


def qwen_row(**changes):
    config = TrainConfig(model="Qwen/Qwen2.5-1.5B-Instruct", load_in_4bit=True)
    config.grpo.num_generations, config.grpo.max_completion_length = 8, 512
    return with_changes(config, changes)


def fitter_for(model, budget):
    return _Fitter(Arch.from_config(load_model_config(model)), budget, 10**6)


def assert_batches_are_the_largest_that_fit(result, model):
    """Doubling the fitted micro-batch (or generation batch) would not fit: nothing is given up for nothing."""
    fitter = fitter_for(model, result.budget)
    batch = result.config.batch
    if "batch.micro_batch_size" in result.changes:
        assert not fitter.fits(with_changes(result.config, {"batch.micro_batch_size": batch.micro_batch_size * 2}))
    if batch.generation_batch_size is not None:
        assert not fitter.fits(with_changes(result.config,
                                            {"batch.generation_batch_size": batch.generation_batch_size * 2}))


def test_the_seeds_row_fits_a_24_gib_card():
    config = seed_row()
    result = fit_config(config, memory=gpu(24))
    assert result.fits and result.total <= 22 * GIB
    assert result.config.batch.micro_batch_size == 1 and result.config.batch.generation_batch_size < 8
    assert set(result.changes) == {"batch.micro_batch_size", "batch.generation_batch_size"}  # no 4-bit etc.
    assert result.config.grpo.max_completion_length == 20480 and config.batch.micro_batch_size == 8  # untouched
    assert_batches_are_the_largest_that_fit(result, config.model)
    text = result.summary()
    assert "micro-batch size: 8 -> 1" in text and "KV cache" in text and "fits" in text


def test_qwen_on_a_6_gib_card_fits_and_states_the_longest_completion():
    result = fit_config(qwen_row(), memory=gpu(6))
    assert result.fits and result.total <= 0.9 * 6 * GIB
    assert 512 < result.longest_completion < 32768
    assert f"{result.longest_completion} tokens" in result.summary()
    # the longest stated is the longest there is: one more token does not fit at micro-batch/generation batch 1
    lean = {"batch.micro_batch_size": 1, "batch.generation_batch_size": 1}
    fitter = fitter_for("Qwen/Qwen2.5-1.5B-Instruct", result.budget)
    longest = with_changes(result.config, {**lean, "grpo.max_completion_length": result.longest_completion})
    assert fitter.fits(longest)
    assert not fitter.fits(with_changes(longest, {"grpo.max_completion_length": result.longest_completion + 1}))


def test_the_completion_length_is_lowered_only_where_the_user_allows_it():
    too_long = qwen_row(**{"grpo.max_completion_length": 60000})
    refused = fit_config(too_long, memory=gpu(6))
    assert not refused.fits and "fit_may_reduce" in refused.summary()
    assert refused.config.grpo.max_completion_length == 60000
    allowed = fit_config(too_long, memory=gpu(6), may_reduce="max_completion_length")
    assert allowed.fits and allowed.config.grpo.max_completion_length == allowed.longest_completion < 60000
    with pytest.raises(ConfigError):  # G is not something auto-fit lowers: it does not bound the memory
        config_from_dict({"fit_may_reduce": "num_generations"})


def test_16_bit_weights_turn_4_bit_only_when_the_batches_are_not_enough():
    config = seed_row()
    config.load_in_4bit, config.grpo.max_completion_length = False, 2048
    small_card = fit_config(config, memory=gpu(16))  # 15 GiB of bf16 weights alone
    assert small_card.fits and small_card.changes["load_in_4bit"] == (False, True)
    assert any("4-bit" in reason for reason in small_card.reasons)
    big_card = fit_config(config, memory=gpu(80))
    assert big_card.fits and "load_in_4bit" not in big_card.changes
    assert_batches_are_the_largest_that_fit(big_card, config.model)


def test_a_run_that_fits_is_left_as_it_is():
    result = fit_config(qwen_row(), memory=gpu(80))
    assert result.fits and result.changes == {} and result.config.to_dict() == qwen_row().to_dict()


def test_estimate_fit_prints_the_fitted_settings(capsys):
    args = ["estimate", "--fit", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--load-in-4bit",
            "--prompts-per-step", "1", "--num-generations", "8", "--max-completion-length", "20480",
            "--gpu-memory", "24"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "micro-batch 1" in out and "micro-batch size: 8 -> 1" in out and "-> fits" in out
    assert cli_main(args + ["--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["verdict"] == "fits" and fitted["fit"]["fits"]
    assert fitted["settings"]["micro_batch_size"] == 1 and fitted["plans"]["grpo_studio"]["total"] <= 22 * GIB
    assert fitted["fit"]["changes"]["batch.micro_batch_size"] == {"old": 8, "new": 1}


def test_offloading_without_checkpointing_is_refused_with_the_fix():
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"offload_activations": "on", "gradient_checkpointing": False})
    assert "gradient_checkpointing: true" in str(raised.value)
    assert config_from_dict({"offload_activations": "auto", "gradient_checkpointing": False})
    assert config_from_dict({"offload_activations": "on", "gradient_checkpointing": True})


# ------------------------------------------------------------------------------------ the engine on the CPU
# small_config's plan in fp32 (estimate_model): about 930.7 MB at micro-batch 12, 929.5 MB at 6.
def with_available_ram(monkeypatch, available):
    real = psutil.virtual_memory
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(**{**real()._asdict(),
                                                                            "available": int(available)}))


def cpu_config(steps=2):
    config = small_config(steps=steps)
    config.device = "cpu"
    return config


def test_the_engine_trains_with_the_fitted_micro_batch(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with_available_ram(monkeypatch, (930_716_800 + 929_544_640) / 2 / 0.9)  # micro-batch 12 over, 6 under
    rows = []
    loss = loop.micro_batch_loss
    monkeypatch.setattr(loop, "micro_batch_loss", lambda hidden, *a, **k: rows.append(hidden.shape[0]) or loss(hidden, *a, **k))
    assert run_engine(cpu_config(), run, quiet=True) == 0
    assert rows == [6, 6, 6, 6, 6, 2] * 2  # 32 completions a step, in micro-batches of 6
    assert load_config(RunPaths(run).config).batch.micro_batch_size == 6
    logs = [e["message"] for e in read_events(RunPaths(run).events) if e["type"] == "log"]
    assert any("auto-fit" in m and "micro-batch size: 12 -> 6" in m for m in logs)


def test_a_run_too_big_for_the_ram_is_refused_before_loading(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with_available_ram(monkeypatch, 300 * 2**20)
    loaded = []
    monkeypatch.setattr(loop.policy_model, "load_policy", lambda *a, **k: loaded.append(1))
    assert run_engine(cpu_config(), run, quiet=True) == EXIT_CODES["config"]
    [error] = [e for e in read_events(RunPaths(run).events) if e["type"] == "error"]
    assert error["kind"] == "config" and "RAM" in error["message"] and "fit: off" in error["hint"]
    assert loaded == []  # refused before any weights load


def test_fit_off_keeps_the_users_numbers(tmp_path, monkeypatch):
    run = tmp_path / "run"
    with_available_ram(monkeypatch, 300 * 2**20)
    config = cpu_config(steps=1)
    config.fit = "off"
    assert run_engine(config, run, quiet=True) == 0
    assert load_config(RunPaths(run).config).batch.micro_batch_size == 12
