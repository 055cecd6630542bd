"""`grpo-studio estimate`: will a run fit this GPU? Both plans side by side, or the JSON the GUI reads.
With --fit, the settings auto-fit chooses (fit.py), the estimate of the fitted run, and why."""
from __future__ import annotations

import argparse
import json

from grpo_studio.engine.common.choices import FIT_MAY_REDUCE, OFFLOAD, OPTIMIZERS

NAME = "estimate"
HELP = "estimate GPU memory for a run (GRPO Studio vs a naive TRL+FA2 trainer) and whether it fits"
ORDER = 20

# flag -> dotted TrainConfig path; values are checked by config_from_dict like any config file.
OVERRIDES = {
    "max_prompt_length": "grpo.max_prompt_length",
    "max_completion_length": "grpo.max_completion_length",
    "num_generations": "grpo.num_generations",
    "load_in_4bit": "load_in_4bit",
    "lora_r": "lora.r",
    "micro_batch_size": "batch.micro_batch_size",
    "prompts_per_step": "batch.prompts_per_step",
    "optimizer": "optim.optimizer",
    "offload_activations": "offload_activations",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="hub id, model folder, config.json or 'demo' (default: the config's)")
    parser.add_argument("--config", metavar="CONFIG.yaml", help="start from this run config")
    parser.add_argument("--max-prompt-length", type=int, metavar="N")
    parser.add_argument("--max-completion-length", type=int, metavar="N")
    parser.add_argument("--num-generations", type=int, metavar="G")
    parser.add_argument("--load-in-4bit", action=argparse.BooleanOptionalAction, default=None,
                        help="4-bit NF4 base weights")
    parser.add_argument("--lora-r", type=int, metavar="R")
    parser.add_argument("--micro-batch-size", type=int, metavar="M")
    parser.add_argument("--prompts-per-step", type=int, metavar="N")
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--offload-activations", choices=OFFLOAD)
    parser.add_argument("--gpu-memory", type=gib_amount, metavar="GIB",
                        help="judge against a GPU with this much free memory instead of the detected one")
    parser.add_argument("--fit", action="store_true",
                        help="choose the micro-batch, generation batch, offloading and 4-bit that fit the GPU "
                             "(or --gpu-memory; on a machine without one, the free RAM) and print them")
    parser.add_argument("--fit-may-reduce", choices=FIT_MAY_REDUCE,
                        help="with --fit: also lower this when the memory settings are not enough")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")


def gib_amount(text: str) -> float:
    """--gpu-memory: a finite, positive number of GiB (nan, inf, 1e400 and -8 are refused by argparse)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB (e.g. 24)") from None
    if not math.isfinite(value) or value <= 0 or value > 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a GPU memory size: give a positive number of GiB "
                                         "(e.g. 24)")
    return value


def build_config(args: argparse.Namespace):
    """The TrainConfig the flags describe: the --config file (or defaults) with the flags applied."""
    from grpo_studio.engine.common.config import TrainConfig, config_from_dict, load_config, set_path

    config = load_config(args.config) if args.config else TrainConfig()
    data = config.to_dict()
    if args.model:
        data["model"] = args.model
    for flag, path in OVERRIDES.items():
        value = getattr(args, flag)
        if value is None:
            continue
        set_path(data, path, value)
    return config_from_dict(data)


def run(args: argparse.Namespace) -> int:
    from grpo_studio.engine.common.estimate import estimate_run, format_table

    config = build_config(args)
    gpu: dict | str = "detect"
    if args.gpu_memory is not None:
        size = int(args.gpu_memory * 2**30)
        gpu = {"name": f"{args.gpu_memory:g} GiB GPU (--gpu-memory)", "total": size, "free": size}
    fitted = None
    if args.fit:
        from grpo_studio.engine.common.fit import fit_config, memory_target

        fitted = fit_config(config, memory=memory_target(config, gpu), may_reduce=args.fit_may_reduce)
        config = fitted.config
    result = estimate_run(config, gpu=gpu)
    if fitted is not None:
        result["fit"] = fitted.as_dict()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_table(result) + ("\n\n" + fitted.summary() if fitted is not None else ""))
    return 0 if fitted is None or fitted.fits else 1
