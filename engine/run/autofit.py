"""`fit: auto` for a new run, before any weights load: the fitted settings (fit.py) replace the user's memory
settings, and config.yaml records them. On the CPU this is also the RAM guard: a run whose plan does not fit
the RAM available even at its leanest is refused with what to change, instead of being ended by the kernel's
OOM killer halfway through loading or the first step.

A resume keeps the settings the run has (its config.yaml, which recovery from out-of-memory also updates);
several GPUs keep theirs (every rank would have to make the same choice).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.errors import ConfigError, StudioError
from grpo_studio.engine.common.estimate_model import GIB
from grpo_studio.engine.train import ranks


@dataclass
class FitDecision:
    config: TrainConfig  # what to train with
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level, message) for the log
    refusal: ConfigError | None = None  # raise it (after the run's hello): the CPU's RAM cannot hold the run


def fit_before_loading(config: TrainConfig, resume: bool) -> FitDecision:
    """What `fit` decides for this run (nothing on resume, with fit: off, or with several GPUs)."""
    if resume or config.fit == "off":
        return FitDecision(config)
    if config.gpus > 1 or ranks.world_size() > 1:
        return FitDecision(config, [("info", "auto-fit: skipped with several GPUs; each keeps the settings as given")])
    from grpo_studio.engine.common.fit import fit_config
    from grpo_studio.engine.common.model_configs import load_model_config

    try:
        result = fit_config(config, load_model_config(config.model))
    except StudioError as error:  # e.g. a hub id (or a reward model) not downloaded yet: its shape is unknown
        return FitDecision(config, [("info", f"auto-fit: skipped, the model's shape is not known yet "
                                             f"({error.message})")])
    except Exception as error:  # noqa: BLE001 - the estimate is advisory: never fail a run over it
        return FitDecision(config, [("warning", f"auto-fit: skipped, no estimate ({type(error).__name__}: {error})")])
    if result.fits:
        return FitDecision(result.config, [("info", "auto-fit: " + result.summary())])
    if result.memory.get("kind") == "ram":
        return FitDecision(config, [("warning", "auto-fit: " + result.summary())], ConfigError(
            f"this run needs about {result.total / GIB:.1f} GiB of RAM even at micro-batch 1 and generation batch 1, "
            f"and {result.memory['free'] / GIB:.1f} GiB is available (the kernel would end it when memory runs out)",
            "lower grpo.max_completion_length or grpo.num_generations (or allow it: fit_may_reduce), choose a "
            "smaller model, close other programs, or set fit: off to start anyway"))
    return FitDecision(result.config, [("warning", "auto-fit: " + result.summary() + "\n  the run starts anyway: "
                                        "the estimate is advisory, and running out of memory halves the batch and "
                                        "retries")])
