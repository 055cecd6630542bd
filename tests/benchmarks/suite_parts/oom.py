"""Part 6: out of memory for real. A run whose first step fits and whose second cannot (its prompt is ~32K
tokens for G completions, G picked from the estimator to need over twice the card) is started as a real
engine process (`python -P -m grpo_studio train CONFIG`). It must end with an `error` event of kind oom whose
hint names a setting, exit code 5, the last completed step (1) checkpointed although checkpoint_every is 0,
and its GPU memory released: the process gone from nvidia-smi and the card back to its used memory before."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from suite_parts.common import ROOT, device_used, estimate, process_used, require_cuda, train_config
from suite_parts.training import QWEN, model_dir

SETTING = re.compile(r"\b(batch\.\w+|grpo\.\w+|offload_activations|load_in_4bit|dtype)\b")


def run(workdir: Path, smoke: bool, deadline: float) -> dict:
    require_cuda("running out of GPU memory for real")
    import torch

    from grpo_studio.engine.checkpoints import checkpoint as ckpt
    from grpo_studio.engine.common.config import dump_config
    from grpo_studio.engine.common.errors import EXIT_CODES
    from grpo_studio.engine.common.events import read_events
    from grpo_studio.engine.train.prompt_sampler import PromptSampler
    from grpo_studio.engine.common.runs import RunPaths

    folder = model_dir(workdir, QWEN, smoke)
    total = torch.cuda.get_device_properties(0).total_memory
    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="run-oom-"))
    data = run_dir.parent / f"{run_dir.name}-data.jsonl"
    config = train_config(folder, data, completion=64, steps=2, prompt=32000)
    first = PromptSampler(2, 1, config.seed).next()[0]  # the prompt step 1 draws: the short one goes there
    rows = ["Question: what is 2 + 3?", "Question: " + "what is 2 + 3? " * 5000]
    if first == 1:
        rows.reverse()
    data.write_text("".join(json.dumps({"prompt": r, "answer": "5"}) + "\n" for r in rows))
    for generations in (8, 16, 32, 64, 128, 256):
        config.grpo.num_generations = config.batch.micro_batch_size = generations
        if estimate(config, folder)["plans"]["grpo_studio"]["total"] > 2 * total:
            break
    config_path = run_dir.parent / f"{run_dir.name}.yaml"
    config_path.write_text(dump_config(config))
    torch.cuda.empty_cache()
    before = device_used()
    env = dict(os.environ, PYTHONSAFEPATH="1", HF_HUB_OFFLINE="1")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-P", "-m", "grpo_studio", "train", str(config_path), "--run-dir",
                             str(run_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        output, _ = proc.communicate(timeout=max(10.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        return {"ran_s": time.monotonic() - started, "passed": False, "problem": "did not finish in its budget",
                "output_tail": output[-2000:]}
    time.sleep(1.0)  # let the driver drop the process from nvidia-smi's list
    events = list(read_events(RunPaths(run_dir).events))
    error = next((e for e in events if e["type"] == "error"), None)
    latest = ckpt.latest_checkpoint(RunPaths(run_dir).checkpoints)
    after = device_used()
    checks = {
        "exit_code_is_oom": proc.returncode == EXIT_CODES["oom"],
        "error_kind_oom": bool(error and error["kind"] == "oom"),
        "hint_names_a_setting": bool(error and SETTING.search(error.get("hint") or "")),
        "last_completed_step_checkpointed": latest is not None and latest.name == "step-1",
        "process_gone_from_gpu": process_used(proc.pid) is None,
        "gpu_memory_back": before is not None and after is not None and after <= before + (256 << 20),
        "no_traceback": "Traceback" not in output,
        "ended_failed": bool(events) and events[-1]["type"] == "done" and events[-1]["reason"] == "failed",
    }
    return {"settings": {"num_generations": config.grpo.num_generations, "max_prompt_length": 32000,
                         "estimate_total": estimate(config, folder)["plans"]["grpo_studio"]["total"],
                         "gpu_total": total},
            "exit_code": proc.returncode, "error": error, "checkpoint": latest.name if latest else None,
            "device_used_before": before, "device_used_after": after, "ran_s": time.monotonic() - started,
            "checks": checks, "passed": all(checks.values()), "output_tail": output[-1500:]}
