"""Cross-compile the fused GRPO loss's Triton kernels for every NVIDIA architecture the product supports,
without a GPU, and print what each compiled kernel needs: shared memory, registers per thread, spilled bytes,
and whether the architecture can launch it.

    .venv/bin/python tests/benchmarks/kernel_compile_table.py                 # the whole table: JSON, then markdown
    .venv/bin/python tests/benchmarks/kernel_compile_table.py --arch 86 --dtype fp32 --kernel grad

Triton compiles to PTX and, with the ptxas it ships, to a cubin for a `GPUTarget` of any compute capability;
the shared memory comes from Triton's metadata, registers and spills from `ptxas -v` run on the same PTX with
Triton's own flags. Every kernel x autotune config x dtype x architecture is compiled, including configs the
engine prunes for that card (the table shows why they are pruned).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset; 1 is what the engine runs

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from grpo_studio.kernels.loss import configs as cfgs  # noqa: E402
from grpo_studio.kernels.loss import triton_kernels as K  # noqa: E402

KERNELS = {"logprob": K._logprob_kernel, "grad": K._grad_kernel}
TRITON_DTYPES = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32"}
_POINTERS = {"h_ptr": None, "w_ptr": None, "ids_ptr": "*i64", "lse_ptr": "*fp32", "logp_ptr": "*fp32",
             "entropy_ptr": "*fp32", "coef_ptr": "*fp32", "ent_coef_ptr": "*fp32", "grad_h_ptr": "*fp32", "grad_w_ptr": "*fp32"}


def _signature(fn, dtype: str, constexprs: dict) -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ("h_ptr", "w_ptr"):
            sig[name] = "*" + TRITON_DTYPES[dtype]
        elif name in _POINTERS:
            sig[name] = _POINTERS[name]
        elif name == "inv_temp":
            sig[name] = "fp32"
        else:  # sizes and strides
            sig[name] = "i32"
    return sig


def _ptxas_usage(ptx: str, arch: int) -> tuple[int, int]:
    """(registers per thread, spilled bytes stored) from ptxas -v with the flags Triton compiles with."""
    from triton.backends.nvidia.compiler import get_ptxas
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        proc = subprocess.run([get_ptxas(arch).path, "-lineinfo", "-v", "--regAllocOptLevel=2", f"--gpu-name={gpu}",
                               str(src), "-o", str(src.with_suffix(".o"))], capture_output=True, text=True,
                              check=True)
    log = proc.stdout + proc.stderr
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = re.search(r"(\d+) bytes spill stores", log)
    return regs, int(spills.group(1)) if spills else 0


def compile_one(kernel: str, config: triton.Config, dtype: str, arch: int) -> dict:
    """One compiled kernel's resources and whether `arch` can launch it (limits: grpo_loss_configs.ARCH_LIMITS)."""
    fn = KERNELS[kernel].fn
    constexprs = dict(config.kwargs, **cfgs.engine_constexprs(kernel, dtype))
    src = ASTSource(fn, _signature(fn, dtype, constexprs), constexprs=constexprs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                  options={"num_warps": config.num_warps, "num_stages": config.num_stages})
    regs, spills = _ptxas_usage(compiled.asm["ptx"], arch)
    shared = compiled.metadata.shared
    return {"kernel": kernel, "config": cfgs.config_name(config), "dtype": dtype, "arch": f"sm_{arch}",
            "shared_bytes": shared, "registers": regs, "spill_bytes": spills,
            "launchable": shared <= cfgs.MAX_SHARED[arch] and cfgs.fits(arch, shared, regs, config.num_warps)}


def engine_picks(row: dict) -> bool:
    """Whether the engine offers this config to the autotuner on that card (by its committed table)."""
    try:
        offered = cfgs.configs_for(row["kernel"], row["dtype"], int(row["arch"][3:]))
    except KeyError:  # not in the committed table: the engine leaves everything to the autotuner
        return True
    return row["config"] in {cfgs.config_name(c) for c in offered}


def _compile_job(job: tuple) -> dict:
    kernel, index, dtype, arch = job
    return compile_one(kernel, cfgs.all_configs(dtype)[index], dtype, arch)


def table(kernels=tuple(KERNELS), dtypes=tuple(TRITON_DTYPES), archs=cfgs.ARCHS, jobs: int = 1) -> list[dict]:
    """Every kernel x config x dtype x arch, compiled in `jobs` processes (each compile is single-threaded)."""
    work = [(k, i, d, a) for k in kernels for d in dtypes for a in archs for i in range(len(cfgs.all_configs(d)))]
    if jobs <= 1:
        return [_compile_job(job) for job in work]
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return pool.map(_compile_job, work, chunksize=1)


def write_module(rows: list[dict], path: Path = cfgs.COMPILED_MODULE) -> None:
    """Commit the figures the engine prunes by: kernels/loss/compiled.py."""
    lines = ['"""Generated by tests/benchmarks/kernel_compile_table.py --write (Triton ' + triton.__version__ + '):',
             "what each kernel x dtype x architecture x autotune config needs once compiled. Do not edit by hand;",
             'tests/test_kernel_compile.py recompiles a sample and fails when this is out of date."""',
             "", "# (kernel, dtype, compute capability, config) -> (shared memory bytes, registers/thread, spill bytes)",
             "COMPILED = {"]
    for r in rows:
        lines.append(f"    ({r['kernel']!r}, {r['dtype']!r}, {int(r['arch'][3:])}, {r['config']!r}): "
                     f"({r['shared_bytes']}, {r['registers']}, {r['spill_bytes']}),")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def markdown(rows: list[dict]) -> str:
    lines = ["| kernel | config | dtype | arch | shared KiB | regs | spills B | launchable | engine picks |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['kernel']} | {r['config']} | {r['dtype']} | {r['arch']} | {r['shared_bytes'] / 1024:.1f} "
                     f"| {r['registers']} | {r['spill_bytes']} | {'yes' if r['launchable'] else 'NO'} "
                     f"| {'yes' if engine_picks(r) else 'no'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel", choices=tuple(KERNELS), action="append")
    p.add_argument("--dtype", choices=tuple(TRITON_DTYPES), action="append")
    p.add_argument("--arch", type=int, choices=cfgs.ARCHS, action="append")
    p.add_argument("--jobs", type=int, default=1, help="compile in this many processes")
    p.add_argument("--json-only", action="store_true")
    p.add_argument("--write", action="store_true", help="rewrite kernels/loss/compiled.py (all kernels)")
    args = p.parse_args(argv)
    rows = table(tuple(args.kernel or KERNELS), tuple(args.dtype or TRITON_DTYPES), tuple(args.arch or cfgs.ARCHS),
                 args.jobs)
    if args.write:
        write_module(rows)
    for r in rows:
        r["engine_picks"] = engine_picks(r)
    bad = [r for r in rows if r["engine_picks"] and not r["launchable"]]
    print(json.dumps({"triton": triton.__version__, "rows": rows, "engine_picks_unlaunchable": len(bad)}, indent=1))
    if not args.json_only:
        print(markdown(rows), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
