"""GPU acceptance in one command: the README's GPU claims measured, in one process, into one JSON file and one
markdown table.

    .venv/bin/python tests/benchmarks/gpu_suite.py --out results/          # full sizes, needs a CUDA GPU
    .venv/bin/python tests/benchmarks/gpu_suite.py --smoke --out /tmp/s/   # tiny sizes on the CPU (CI)

Parts (each with its own time budget: a slow part is stopped and reported as timed out, the others still run):
  1 loss      fused GRPO loss, bf16 H=4096 V=128256, 8 x 4096 tokens: Triton vs chunked torch vs naive vs Liger
  2 grpo      Qwen2.5-1.5B shape, 4-bit + LoRA r=16, G=8, 512 tokens, 3 GRPO steps: VRAM vs the estimate
  3 offload   offloaded checkpointing on vs off at 4096 tokens: step-time ratio, VRAM saved vs estimated
  4 long      Llama-3.1-8B shape, G=8, 4-bit: longest completion that fits, VRAM vs the estimate
  5 rollout   completion tokens/s: the engine's generation vs plain HF generate at part 2's settings
  6 oom       a run that cannot fit ends with an oom error, a hint, its last step checkpointed, memory freed
  7 compile   the Triton kernels cross-compiled for sm_75..sm_90 (shared memory, registers, spills), and every
              config the engine offers this card launched on it
  8 mismatch  an fp32 run sampling in bf16 / fp16: the sampler-vs-trainer KL per token and the share of tokens
              the loss's truncated importance sampling capped
Every figure is absolute and, where it has one, a ratio against its baseline measured in the same run. A part
that needs CUDA where there is none is reported as skipped with the reason; nothing is estimated in its place.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from suite_parts import compile as kernel_compile  # noqa: E402
from suite_parts import loss, mismatch, oom, rollout, training  # noqa: E402
from suite_parts.common import ROOT, Skip, clean_cuda, gpu_record  # noqa: E402

# key -> (number, title, function(workdir, smoke, deadline), budget seconds at full size, in smoke mode).
# Full budgets add up to 9 minutes (model building included), leaving 1 of the 10 for set-up.
PARTS = {
    "loss": (1, "fused GRPO loss", lambda w, s, d: loss.run(s, d), 75, 60),
    "grpo": (2, "Qwen2.5-1.5B GRPO steps: VRAM vs estimate", training.grpo_steps, 100, 90),
    "offload": (3, "offloaded checkpointing on vs off", training.offload_on_off, 55, 60),
    "long": (4, "Llama-3.1-8B longest completion", training.longest_fitting, 100, 60),
    "rollout": (5, "rollout tokens/s", rollout.run, 65, 60),
    "oom": (6, "out of memory for real", oom.run, 50, 30),
    "compile": (7, "Triton kernels compiled for every card", kernel_compile.run, 55, 240),
    "mismatch": (8, "bf16 / fp16 sampling of an fp32 run: sampler mismatch", mismatch.run, 40, 90),
}
# Model parts first: part 2's nvidia-smi figure is then the process's own, before other parts' kernels load.
ORDER = ("grpo", "rollout", "mismatch", "offload", "long", "loss", "oom", "compile")
LIBRARIES = ("torch", "triton", "transformers", "peft", "bitsandbytes", "accelerate", "liger_kernel", "grpo_studio")


class PartTimeout(BaseException):
    """Raised by the alarm when a part overruns its budget (BaseException: the engine's handlers let it by)."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="every part at tiny sizes on the CPU")
    p.add_argument("--out", type=Path, default=ROOT / "results", help="folder for the JSON and the table")
    p.add_argument("--workdir", type=Path, default=None, help="models and runs (default: OUT/work)")
    p.add_argument("--parts", default=",".join(ORDER), help="comma-separated subset of " + ", ".join(ORDER))
    p.add_argument("--budget-scale", type=float, default=1.0, help="multiply every part's time budget")
    return p.parse_args(argv)


def environment() -> dict:
    import torch

    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "gpu": gpu_record(), "cuda": torch.version.cuda, "versions": versions, "python": platform.python_version(),
            "platform": platform.platform(), "commit": commit, "command": " ".join(sys.argv)}


def run_part(key: str, workdir: Path, smoke: bool, scale: float) -> dict:
    number, title, fn, full_budget, smoke_budget = PARTS[key]
    budget = (smoke_budget if smoke else full_budget) * scale
    started = time.monotonic()
    deadline = started + 0.8 * budget  # parts stop starting new repeats here; the alarm is the hard stop

    def overrun(signum, frame):
        raise PartTimeout()

    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, budget)
    entry = {"part": number, "title": title, "budget_s": budget}
    try:
        entry.update(status="ok", result=fn(workdir, smoke, deadline))
    except Skip as reason:
        entry.update(status="skipped", reason=str(reason))
    except PartTimeout:
        entry.update(status="timed_out", reason=f"stopped at its {budget:.0f} s budget")
    except Exception as error:  # one part's failure must not cost the others their run
        entry.update(status="failed", reason=f"{type(error).__name__}: {error}", traceback=traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    entry["wall_s"] = time.monotonic() - started
    try:
        clean_cuda()
    except Exception:  # a part that broke the CUDA context: later parts will say so themselves
        pass
    return entry


# ------------------------------------------------------------------------------------------------ table
def _gib(value) -> str:
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def _x(value) -> str:
    return "-" if value is None else f"{value:.3g}x"


def _s(value) -> str:
    return "-" if value is None else f"{value:.3g} s"


def rows(key: str, r: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, value, baseline, ratio, goal) rows of one part's result."""
    if key == "loss":
        out = []
        for name, c in r["contenders"].items():
            if "time" not in c:
                out.append((name, "skipped: " + c.get("skipped", ""), "", "", ""))
                continue
            out.append((f"{name}: time / peak extra memory", f"{_s(c['time']['median'])} / "
                        f"{_gib(c['peak_extra_memory']['median'])}", "", "",
                        f"max abs diff vs fp32: loss {c['max_abs_diff_loss']:.2e}, "
                        f"grad {c['max_abs_diff_grad_h']:.2e}; run to run "
                        f"{c.get('run_to_run_max_abs_diff_grad_h', float('nan')):.2e}"))
        for name, q in r["ratios"].items():
            goal = {"triton_vs_naive": "memory <= 0.05x", "triton_vs_liger": "time <= 1.0x"}.get(name, "")
            out.append((name, f"time {_x(q['time'])}", "", f"memory {_x(q['peak_extra_memory'])}", goal))
        return out
    if key == "grpo":
        m, e = r["measured"], r["estimate"]
        return [("peak VRAM, torch max reserved", _gib(m["torch_max_reserved"]), f"estimate {_gib(e['total'])}",
                 _x(r["ratios"]["estimate_vs_torch_reserved"]), "measured <= 4 GB; estimate within +-15%, never below"),
                ("peak VRAM, nvidia-smi (process)", _gib(m["nvidia_smi"]["process_peak"]),
                 f"estimate {_gib(e['total'])}",
                 _x(r["ratios"]["estimate_vs_nvidia_smi"]), ""),
                ("completions ran full length", str(r["full_length"]), "", "", "EOS suppressed")]
    if key == "offload":
        on, off = r["modes"]["on"], r["modes"]["off"]
        return [("training step, offload on / off", f"{_s(on['step_s']['median'])} / {_s(off['step_s']['median'])}",
                 "off", _x(r["ratios"]["step_time_on_vs_off"]), "<= 1.03x"),
                ("VRAM saved by offloading", _gib(r["vram_saved_bytes"]),
                 f"estimate {_gib(r['estimated_activation_saving_bytes'])}",
                 _x(r["ratios"]["vram_saved_vs_estimated_activation_saving"]), "")]
    if key == "long":
        out = [(f"{p['completion_tokens']} tokens: peak reserved", "OOM" if "oom" in p else _gib(p["peak_reserved"]),
                f"estimate {_gib(p['estimate']['training_phase_peak'])}", _x(p.get("estimate_vs_reserved")), "")
               for p in r["points"]]
        return out + [("longest fitting completion", str(r["longest_fitting_completion_tokens"]), "", "", r["stopped"])]
    if key == "rollout":
        e, h = (r["contenders"][k]["tokens_per_s"]["median"] for k in ("engine", "plain_hf_generate"))
        return [("completion tokens/s, engine", "-" if e is None else f"{e:.1f}",
                 "-" if h is None else f"plain HF {h:.1f}", _x(r["ratios"]["engine_vs_plain_hf"]), "")]
    if key == "compile":
        out = [("configs compiled (kernel x config x dtype x arch)", str(r["compiled"]), "", "", ""),
               ("engine-offered configs a card cannot launch", str(r["engine_picks_unlaunchable"]), "", "", "0"),
               ("rows differing from kernels/loss/compiled.py", str(r["rows_differing_from_committed_table"]),
                "", "", "0 (else rerun kernel_compile_table.py --write)")]
        if "launch_failures" in r:
            out.append(("engine-offered configs failing to launch here", str(r["launch_failures"]), "", "", "0"))
        return out
    if key == "oom":
        return [(name, "pass" if ok else "FAIL", "", "", "") for name, ok in r["checks"].items()]
    if key == "mismatch":
        out = []
        for dtype, m in r["sampling"].items():
            if m["sampler_kl"] is None:
                out.append((f"sampling in {dtype}: mismatch", "not measured (same forward as training)", "", "", ""))
                continue
            kl, capped = m["sampler_kl"], m["sampler_capped"]
            out.append((f"sampling in {dtype}: KL per token / capped share",
                        f"{kl['median']:.2e} / {capped['median']:.2%}", "fp32 sampling: none", "",
                        f"{m['steps']} steps; KL {kl['min']:.2e}..{kl['max']:.2e}"))
        return out
    return []


def markdown(report: dict) -> str:
    env, gpu = report["environment"], report["environment"]["gpu"]
    v = env["versions"]
    lines = [f"GPU suite ({'smoke, CPU tiny sizes' if report['smoke'] else 'full'}), {env['date']}: "
             f"{gpu['name'] or 'no GPU'}" + (f", driver {gpu['driver']}, CUDA {env['cuda']}" if gpu["name"] else ""),
             "; ".join(f"{k} {v[k]}" for k in ("torch", "triton", "transformers", "bitsandbytes", "peft",
                                               "liger_kernel")),
             "", "| part | figure | value | baseline | ratio | goal / note |", "| --- | --- | --- | --- | --- | --- |"]
    for key, entry in sorted(report["parts"].items(), key=lambda kv: kv[1]["part"]):
        label = f"{entry['part']} {entry['title']}"
        if entry["status"] != "ok":
            lines.append(f"| {label} | {entry['status']} | | | | {entry.get('reason', '')} |")
            continue
        for figure, value, baseline, ratio_, goal in rows(key, entry["result"]):
            lines.append(f"| {label} | {figure} | {value} | {baseline} | {ratio_} | {goal} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    keys = [k.strip() for k in args.parts.split(",") if k.strip()]
    unknown = [k for k in keys if k not in PARTS]
    if unknown:
        raise SystemExit(f"unknown parts {unknown}; choose from {', '.join(ORDER)}")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir or args.out / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = {"smoke": args.smoke, "environment": environment(), "parts": {}}
    for key in [k for k in ORDER if k in keys]:
        report["parts"][key] = run_part(key, workdir, args.smoke, args.budget_scale)
        print(f"[gpu_suite] part {PARTS[key][0]} {key}: {report['parts'][key]['status']} "
              f"({report['parts'][key]['wall_s']:.1f} s)", file=sys.stderr, flush=True)
    report["wall_s"] = time.monotonic() - started
    name = "gpu_suite-smoke" if args.smoke else "gpu_suite"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (args.out / f"{name}.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
