"""The loss options through the Triton kernels (TRITON_INTERPRET=1 on CPU) against TRL's formula: the same
cases as test_loss_options.py. As test_grpo_loss_triton.py explains, the interpreter must be switched on
before triton is imported, so this file is also a script the tests run in a fresh interpreter."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
TOLERANCE = 1e-5


def _counting(fn, name, calls):
    def wrapped(*args, **kwargs):
        calls.append((name, kwargs.get("ent_coef", args[8] if len(args) > 8 else None) is not None))
        return fn(*args, **kwargs)
    return wrapped


def run_in_interpreter(names: list[str]) -> list[dict]:
    import importlib

    from loss_option_cases import run_case

    module = importlib.import_module("grpo_studio.kernels.loss.functional")
    triton_module = importlib.import_module("grpo_studio.kernels.loss.triton_kernels")
    out = []
    for name in names:
        calls: list = []
        real = triton_module.grads
        triton_module.grads = _counting(real, "grads", calls)
        try:
            result = run_case(name)
        finally:
            triton_module.grads = real
        import torch
        out.append({**result, "uses_triton": module._uses_triton(torch.zeros(1)),
                    "grad_launches": len(calls), "entropy_launches": sum(flag for _, flag in calls)})
    return out


@pytest.fixture(scope="module")
def interpreter_results() -> dict:
    from triton_interpreter import interpreter_run

    return interpreter_run(HERE, timeout=900)


def _case_names() -> list[str]:
    sys.path.insert(0, str(HERE.parent))
    from loss_option_cases import CASES

    return list(CASES)


@pytest.mark.parametrize("name", _case_names())
def test_triton_matches_trl_formula(interpreter_results, name):
    result = interpreter_results[name]
    assert result["uses_triton"] and result["grad_launches"] >= 1, "the Triton kernels did not run"
    bad = {k: v for k, v in result["diffs"].items() if not v <= TOLERANCE * max(1.0, result["scales"][k])}
    assert not bad, f"{name}: off TRL's formula by {bad}"


def test_the_entropy_bonus_runs_in_the_gradient_kernel(interpreter_results):
    assert interpreter_results["entropy-coef-on-policy"]["entropy_launches"] == 1
    assert interpreter_results["dapo-token-oldTrue"]["entropy_launches"] == 0


if __name__ == "__main__":
    assert os.environ.get("TRITON_INTERPRET") == "1", "run through the tests (they set TRITON_INTERPRET=1)"
    sys.path.insert(0, str(HERE.parent))
    for line in run_in_interpreter(sys.argv[1:] or _case_names()):
        print(json.dumps(line), flush=True)
