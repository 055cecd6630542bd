"""Part 7: the Triton kernels compiled for every card, and launched on this one.

Cross-compiles every kernel x autotune config x dtype for sm_75/80/86/89/90 (tests/benchmarks/
kernel_compile_table.py: shared memory, registers, spills, launchable, whether the engine offers it) and counts
the rows that disagree with the committed table the engine prunes by (kernels/loss/compiled.py). On a CUDA
card it then launches every config the engine offers this card, per dtype, at a small size: each must run, and
the driver's own figures (registers, spills, shared memory) are recorded beside the table's.
Smoke mode (CPU): the fp32 gradient kernel for sm_86 only, the case that once had no launchable config.
"""
from __future__ import annotations

import sys

from suite_parts.common import ROOT, cuda_available

sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))


def _stale(rows: list[dict]) -> list[dict]:
    from grpo_studio.kernels.loss.compiled import COMPILED

    return [r for r in rows if COMPILED.get((r["kernel"], r["dtype"], int(r["arch"][3:]), r["config"]))
            != (r["shared_bytes"], r["registers"], r["spill_bytes"])]


def _launch_on_this_card() -> list[dict]:
    import torch

    from grpo_studio.kernels.loss import configs as cfgs
    from grpo_studio.kernels.loss import triton_kernels as K

    major, minor = torch.cuda.get_device_capability()
    arch = 10 * major + minor
    out = []
    n, h, v = 256, 512, 4096
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        hid = torch.randn(n, h, device="cuda", dtype=dtype)
        w = torch.randn(v, h, device="cuda", dtype=dtype) / h ** 0.5
        ids = torch.randint(0, v, (n,), device="cuda")
        f32 = dict(dtype=torch.float32, device="cuda")
        for kernel, jit in (("logprob", K._logprob_kernel.fn), ("grad", K._grad_kernel.fn)):
            for config in cfgs.configs_for(kernel, name, arch):
                grid = (-(-n // config.kwargs["BLOCK_N"]), -(-v // config.kwargs["BLOCK_V"]))
                common = dict(config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages,
                              **cfgs.engine_constexprs(kernel, name))
                row = {"kernel": kernel, "dtype": name, "config": cfgs.config_name(config), "arch": f"sm_{arch}"}
                try:
                    if kernel == "logprob":
                        compiled = jit[grid[:1]](hid, w, ids, torch.empty(n, **f32), torch.empty(n, **f32),
                                                 torch.empty(n, **f32), n, v, h, h, h, 1.0, **common)
                    else:
                        compiled = jit[grid](hid, w, ids, torch.zeros(n, **f32), torch.ones(n, **f32),
                                             torch.zeros(n, h, **f32), torch.zeros(1, **f32), n, v, h, h, h, 1.0,
                                             **common)
                    torch.cuda.synchronize()
                    row.update(ok=True, registers=compiled.n_regs, spills=compiled.n_spills,
                               shared_bytes=compiled.metadata.shared)
                except Exception as exc:  # noqa: BLE001 - the report says which config failed and why
                    row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
                out.append(row)
    return out


def run(workdir, smoke: bool, deadline: float) -> dict:
    import kernel_compile_table as table

    if smoke:
        rows = table.table(kernels=("grad",), dtypes=("fp32",), archs=(86,))
    else:
        rows = table.table(jobs=8)
    for r in rows:
        r["engine_picks"] = table.engine_picks(r)
    result = {"rows": rows, "compiled": len(rows),
              "engine_picks_unlaunchable": sum(r["engine_picks"] and not r["launchable"] for r in rows),
              "rows_differing_from_committed_table": len(_stale(rows)), "markdown": table.markdown(rows)}
    if cuda_available():
        launched = _launch_on_this_card()
        result["launched_on_this_card"] = launched
        result["launch_failures"] = sum(not r["ok"] for r in launched)
    return result
