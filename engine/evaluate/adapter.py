"""`grpo-studio eval`: the held-out evaluation of a finished run, one of its checkpoints or any adapter.

The run's config says how it was trained (model, prompts, reward functions, completion length, sampling);
`--data` / `--split` name held-out data when the run had no `eval:` section or should be judged on other
data. The model loads as chat.load_model loads it (as training did), and engine.evaluate.held_out answers and
scores the prompts exactly as the Trainer's own evaluations do, so the numbers compare with the run's
eval events. `with_base` evaluates the base model too (the same weights with the adapter off): before -> after.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from grpo_studio.engine.common.config import TrainConfig, load_config
from grpo_studio.engine.common.errors import ConfigError, StudioError
from grpo_studio.engine.common.event_types import check_fields

Sink = Callable[[dict], None]


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """`step-N`, `N` or a path: the checkpoint folder of the run."""
    direct = Path(checkpoint).expanduser()
    if direct.is_dir():
        return direct
    name = checkpoint if checkpoint.startswith("step-") else f"step-{checkpoint}"
    folder = run_dir / "checkpoints" / name
    if not folder.is_dir():
        kept = sorted((p.name for p in (run_dir / "checkpoints").glob("step-*")),
                      key=lambda n: int(n.split("-")[1]) if n.split("-")[1].isdigit() else -1)
        raise StudioError(f"no checkpoint {name} in {run_dir}",
                          f"the run keeps: {', '.join(kept) or 'no checkpoints'}; or leave out --checkpoint "
                          "for the final adapter")
    return folder


def eval_config_for(config: TrainConfig, data: str | None, split: str | None, num_prompts: int | None,
                    greedy: bool | None) -> TrainConfig:
    """The run's config with the command line's held-out data and sample size."""
    spec = config.eval
    spec = dataclasses.replace(spec, path=data if data is not None else spec.path,
                               split=split if split is not None else (None if data is not None else spec.split),
                               num_prompts=num_prompts or spec.num_prompts,
                               greedy=spec.greedy if greedy is None else greedy)
    if not spec.enabled:
        raise ConfigError("the run has no held-out data (its config has no eval: section)",
                          "name the held-out questions with --data FILE (the same columns as the training "
                          "data), or --split NAME for a split of the training dataset")
    return dataclasses.replace(config, eval=spec)


def evaluate_run(path: str | Path, sink: Sink, *, data: str | None = None, split: str | None = None,
                 checkpoint: str | None = None, num_prompts: int | None = None, greedy: bool | None = None,
                 with_base: bool = False, base_dir: str | Path | None = None) -> list[dict]:
    """Evaluate the run's adapter (or `checkpoint`) on held-out prompts; each result goes to `sink` as an
    {"type": "eval", ...} message (base first with `with_base`) and is returned."""
    from grpo_studio.engine.chat.answers import load_model
    from grpo_studio.engine.evaluate.held_out import Evaluator, load_eval_examples
    from grpo_studio.engine.export.gguf_adapter import find_adapter, find_run_dir
    from grpo_studio.engine.rewards.scoring import load_reward_functions

    source = Path(path).expanduser()
    run_dir = find_run_dir(source) if source.exists() else None
    if checkpoint is not None:
        if run_dir is None:
            raise StudioError(f"--checkpoint needs a run folder, and {path} is not one",
                              "pass the run (its folder or name), or the checkpoint folder itself")
        source = checkpoint_path(run_dir, checkpoint)
    adapter_dir = find_adapter(source)
    run_dir = run_dir or find_run_dir(adapter_dir)
    if run_dir is None:
        raise StudioError(f"{adapter_dir} belongs to no run (no config.yaml above it)",
                          "evaluate a run folder, a checkpoint in one, or its adapter/")
    config = eval_config_for(load_config(run_dir / "config.yaml"), data, split, num_prompts, greedy)

    def emit(kind: str, **fields) -> None:
        check_fields(kind, fields)  # the Evaluator's events are the run's event types
        if kind == "log":
            sink({"type": "log", "message": fields["message"]})

    functions = load_reward_functions(config.rewards, base_dir=run_dir,
                                      max_completion_length=config.grpo.max_completion_length,
                                      timeout_s=config.reward_timeout_s)
    sink({"type": "log", "message": f"loading {adapter_dir}"})
    model, tokenizer, device = load_model(adapter_dir, config, base_dir)
    examples, notes = load_eval_examples(config, tokenizer)
    for note in notes:
        sink({"type": "log", "message": note})
    evaluator = Evaluator(config, tokenizer, examples, functions, emit)
    results = []
    if with_base:
        with model.disable_adapter():
            results.append(evaluator.evaluate(model, 0, device, side="base", adapter=None))
        sink({"type": "eval", **results[-1]})
    step = _adapter_step(adapter_dir)
    results.append(evaluator.evaluate(model, step, device, side="tuned", adapter=str(adapter_dir)))
    sink({"type": "eval", **results[-1]})
    return results


def _adapter_step(adapter_dir: Path) -> int | None:
    """The training step an adapter is from: a checkpoint's name, else the run's last step (status.json)."""
    for folder in (adapter_dir, adapter_dir.parent):
        if folder.name.startswith("step-") and folder.name[5:].isdigit():
            return int(folder.name[5:])
    from grpo_studio.engine.common.runs import RunPaths, read_status

    try:
        step = read_status(RunPaths(adapter_dir.parent)).get("step")
    except (OSError, ValueError, StudioError):
        return None
    return step if isinstance(step, int) else None
