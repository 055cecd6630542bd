"""Benchmark: our GGUF LoRA export vs llama.cpp's own convert_lora_to_gguf.py, tensor by tensor, one run.

Builds a tiny random model and a LoRA adapter (random non-zero lora_B), converts the adapter with both, and
prints JSON: whether tensor names, ggml shapes and types match, the largest value difference per tensor type,
the adapter metadata of both files, and the conversion times (ours / llama.cpp's).

    python tests/benchmarks/bench_gguf_vs_llamacpp.py --llama-cpp-dir ~/src/llama.cpp
    LLAMA_CPP_DIR=/tmp/llama_cpp_python-0.3.36/vendor/llama.cpp python tests/benchmarks/bench_gguf_vs_llamacpp.py

llama.cpp's script ships in the llama-cpp-python source distribution (vendor/llama.cpp/); get it with
`pip download --no-deps --no-binary :all: llama-cpp-python` and unpack. Without it the result says skipped.
Note: llama.cpp's script writes lora_alpha as is and ignores rsLoRA and rank/alpha patterns, so with
--rslora --rank-pattern the two files differ on purpose (ours folds the exact scale into lora_b).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent.parent
SCRIPT = "convert_lora_to_gguf.py"
ARCHITECTURES = ("llama", "qwen2", "qwen3", "mistral", "gemma2", "phi3")  # the ones the README claims
OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--llama-cpp-dir", default=os.environ.get("LLAMA_CPP_DIR"),
                   help="llama.cpp checkout (or unpacked llama-cpp-python sdist); default $LLAMA_CPP_DIR")
    p.add_argument("--arch", default="llama", choices=ARCHITECTURES, help="tiny model architecture")
    p.add_argument("--outtype", default="f32", choices=OUTTYPES)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--rslora", action="store_true", help="rank-stabilised LoRA with a rank pattern (differs on purpose)")
    return p.parse_args(argv)


def find_script(folder: str | None) -> Path | None:
    if not folder:
        return None
    root = Path(folder).expanduser()
    for candidate in (root, root / "vendor" / "llama.cpp", *root.glob("*/vendor/llama.cpp")):
        if (candidate / SCRIPT).is_file():
            return candidate / SCRIPT
    return None


def build(tmp: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    sys.path.insert(0, str(TESTS))
    from tiny_models import build_model

    base = tmp / "base"
    model, _ = build_model(base, args.arch, hidden_size=args.hidden)
    lora = {"r": args.rank, "lora_alpha": 2 * args.rank, "target_modules": "all-linear"}
    if args.rslora:
        lora.update(use_rslora=True, rank_pattern={"q_proj": args.rank * 2})
    peft_model = get_peft_model(model, LoraConfig(**lora))
    torch.manual_seed(0)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    peft_model.peft_config["default"].base_model_name_or_path = str(base)
    peft_model.save_pretrained(str(tmp / "adapter"))
    return base, tmp / "adapter"


def read(path: Path) -> tuple[dict, dict]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    keys = ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha")
    meta = {k: reader.fields[k].contents() for k in keys if k in reader.fields}
    tensors = {}
    for t in reader.tensors:
        data = np.asarray(t.data)
        if t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            data = gguf.quants.dequantize(data, t.tensor_type)
        tensors[t.name] = ([int(n) for n in t.shape], t.tensor_type.name, data.astype(np.float32))
    return meta, tensors


def compare(ours: dict, theirs: dict) -> dict:
    common = sorted(set(ours) & set(theirs))
    diffs: dict[str, float] = {}
    for name in common:
        if ours[name][0] == theirs[name][0]:
            kind = name.rsplit(".", 1)[1]
            diff = float(np.abs(ours[name][2] - theirs[name][2]).max())
            diffs[kind] = max(diffs.get(kind, 0.0), diff)
    return {
        "tensors": {"ours": len(ours), "llama_cpp": len(theirs)},
        "names_match": set(ours) == set(theirs),
        "only_ours": sorted(set(ours) - set(theirs))[:5], "only_llama_cpp": sorted(set(theirs) - set(ours))[:5],
        "shapes_match": all(ours[n][0] == theirs[n][0] for n in common),
        "types_match": all(ours[n][1] == theirs[n][1] for n in common),
        "types": sorted({f"{ours[n][1]}/{theirs[n][1]}" for n in common}),
        "max_abs_diff": diffs,
        "identical_values": all(v == 0.0 for v in diffs.values()) and len(diffs) > 0,
    }


OURS = "import sys; from grpo_studio.engine.cli import main; sys.exit(main(['export', *sys.argv[1:]]))"


def timed(command: list[str], safe_path: bool) -> tuple[float, subprocess.CompletedProcess]:
    """Run and time `command`. llama.cpp's script imports modules that sit beside it (its folder must be on
    sys.path), so it runs without PYTHONSAFEPATH; ours with it (`-P`: the checkout's kernels/ must never
    shadow Hugging Face's `kernels`)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if not safe_path:
        env.pop("PYTHONSAFEPATH", None)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    script = find_script(args.llama_cpp_dir)
    if script is None:
        why = (f"{SCRIPT} not found under {args.llama_cpp_dir}" if args.llama_cpp_dir else
               "no llama.cpp given: pass --llama-cpp-dir or set LLAMA_CPP_DIR (the llama-cpp-python sdist has it "
               "in vendor/llama.cpp)")
        result = {"benchmark": "gguf_vs_llamacpp", "status": "skipped", "reason": why}
        print(json.dumps(result, indent=1))
        return result
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base, adapter = build(tmp, args)
        # both as fresh processes (interpreter, imports, conversion), so the times compare like for like
        ours_s, proc = timed([sys.executable, "-P", "-c", OURS, str(adapter), "--gguf", str(tmp / "ours.gguf"),
                              "--outtype", args.outtype], safe_path=True)
        if proc.returncode != 0:
            raise RuntimeError(f"our export failed: {proc.stderr[-600:]}")
        theirs_s, proc = timed([sys.executable, str(script), str(adapter), "--base", str(base), "--outtype",
                                args.outtype, "--outfile", str(tmp / "theirs.gguf")], safe_path=False)
        if proc.returncode != 0:
            result = {"benchmark": "gguf_vs_llamacpp", "status": "skipped",
                      "reason": f"{SCRIPT} failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}"}
            print(json.dumps(result, indent=1))
            return result
        ours_meta, ours = read(tmp / "ours.gguf")
        theirs_meta, theirs = read(tmp / "theirs.gguf")
    result = {"benchmark": "gguf_vs_llamacpp", "status": "compared", "llama_cpp_script": str(script),
              "arch": args.arch, "outtype": args.outtype, "rank": args.rank, "rslora": args.rslora,
              **compare(ours, theirs), "metadata": {"ours": ours_meta, "llama_cpp": theirs_meta},
              "metadata_match": ours_meta == theirs_meta,
              "time_s": {"ours": round(ours_s, 3), "llama_cpp": round(theirs_s, 3)},
              "ratios": {"time_ours_vs_llama_cpp": round(ours_s / theirs_s, 3)}}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
