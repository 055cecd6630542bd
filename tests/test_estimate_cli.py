"""`grpo-studio estimate`: flags, config files, JSON for the GUI, the table, errors."""
import json

from grpo_studio.engine.cli import main


def run_cli(capsys, *argv):
    code = main(["estimate", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_output_has_the_design_shape_and_applies_the_flags(capsys, monkeypatch):
    monkeypatch.setenv("GRPO_STUDIO_GPU", "none")
    code, out, _ = run_cli(capsys, "--model", "meta-llama/Llama-3.1-8B", "--json", "--load-in-4bit",
                           "--lora-r", "32", "--num-generations", "8", "--prompts-per-step", "1",
                           "--max-prompt-length", "256", "--max-completion-length", "20224",
                           "--micro-batch-size", "8", "--optimizer", "adamw_8bit", "--offload-activations", "on")
    assert code == 0
    result = json.loads(out)
    assert result["verdict"] == "no_gpu" and result["gpu"] is None
    s = result["settings"]
    assert (s["load_in_4bit"], s["lora_r"], s["num_generations"], s["max_completion_length"], s["optimizer"]) == \
        (True, 32, 8, 20224, "adamw_8bit")
    assert set(result["plans"]) == {"grpo_studio", "naive"}
    assert result["plans"]["naive"]["total"] > 5 * result["plans"]["grpo_studio"]["total"]


def test_table_output_and_a_hypothetical_gpu(capsys):
    code, out, _ = run_cli(capsys, "--model", "Qwen/Qwen2.5-1.5B-Instruct", "--gpu-memory", "6",
                           "--no-load-in-4bit", "--max-completion-length", "4096")
    assert code == 0
    assert "GRPO Studio" in out and "naive TRL+FA2" in out and "6 GiB GPU" in out
    assert "too big" in out and "try:" in out


def test_config_file_is_the_starting_point(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GRPO_STUDIO_GPU", "none")
    (tmp_path / "config.yaml").write_text("model: Qwen/Qwen3-0.6B\ngrpo:\n  num_generations: 4\n"
                                          "  max_completion_length: 512\nlora:\n  r: 8\n")
    code, out, _ = run_cli(capsys, "--config", str(tmp_path / "config.yaml"), "--lora-r", "64", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["model"]["name"] == "Qwen/Qwen3-0.6B"
    assert (result["settings"]["num_generations"], result["settings"]["lora_r"]) == (4, 64)


def test_demo_is_the_default_model(capsys, monkeypatch):
    monkeypatch.setenv("GRPO_STUDIO_GPU", "none")
    code, out, _ = run_cli(capsys, "--json")
    assert code == 0 and json.loads(out)["model"]["source"] == "demo"


def test_bad_values_and_unknown_models_exit_with_the_config_code(capsys, tmp_path, monkeypatch):
    code, _, err = run_cli(capsys, "--model", "Qwen/Qwen3-0.6B", "--num-generations", "1")
    assert code == 2 and "grpo.num_generations" in err
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(capsys, "--model", "nobody/unknown-model")
    assert code == 2 and "unknown model" in err and "hint:" in err


def test_flag_choices_are_the_config_fields_choices():
    """The estimate command's --optimizer / --offload-activations / --fit-may-reduce offer exactly what the
    config accepts for those fields (one tuple each)."""
    import argparse
    import dataclasses

    from grpo_studio.engine.commands import estimate
    from grpo_studio.engine.common.config import OptimConfig, TrainConfig

    def choices(cls: type, name: str) -> tuple:
        return next(f.metadata["choices"] for f in dataclasses.fields(cls) if f.name == name)

    parser = argparse.ArgumentParser()
    estimate.add_arguments(parser)
    flags = {a.dest: a.choices for a in parser._actions if a.choices}
    assert flags["optimizer"] == choices(OptimConfig, "optimizer")
    assert flags["offload_activations"] == choices(TrainConfig, "offload_activations")
    assert flags["fit_may_reduce"] == choices(TrainConfig, "fit_may_reduce")
