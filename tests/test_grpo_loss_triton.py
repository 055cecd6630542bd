"""The Triton kernels, run on CPU through the Triton interpreter, against the full-logits TRL reference.

TRITON_INTERPRET=1 has to be set before triton is first imported, and pytest runs every test file in one
process, so this file is also a script: the tests launch it in a fresh interpreter with the variable set,
it runs every case there and prints one JSON line per case, and the tests check those lines. Interpreter
cases use fp32 (the interpreter's bf16 tl.dot is wrong) and small shapes (it is slow).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
ATOL = 1e-5

# name -> (make_inputs kwargs, grpo_loss kwargs; "old"/"ref" stand for the generated tensors)
CASES = {
    **{f"{lt}-beta{beta}-old{old}": (dict(seed=i), dict(loss_type=lt, beta=beta, old=old, ref=beta > 0,
                                                        epsilon_high=0.28))
       for i, (lt, beta, old) in enumerate([("grpo", 0.0, True), ("grpo", 0.1, False), ("bnpo", 0.1, True),
                                             ("dr_grpo", 0.0, False), ("dr_grpo", 0.1, True),
                                             ("dapo", 0.0, True), ("dapo", 0.1, False)])},
    "temperature": (dict(seed=20), dict(temperature=0.7, old=True, ref=True, beta=0.04)),
    "weight-no-grad": (dict(seed=21, weight_grad=False), dict(old=True)),
    "empty-row": (dict(seed=22, empty_row=1), dict(loss_type="grpo", old=True, ref=True, beta=0.1)),
    "zero-advantages": (dict(seed=23, zero_adv=True), dict(old=True)),
    "odd-vocab-and-hidden": (dict(batch=2, length=5, hidden_size=20, vocab=45, seed=24), dict(old=True)),
    "single-token": (dict(batch=1, length=1, hidden_size=5, vocab=3, seed=25, pad=False), dict(old=True)),
    "rows-over-one-block": (dict(batch=3, length=13, hidden_size=8, vocab=70, seed=26), dict(old=True)),
    "gspo-old": (dict(seed=27, seq_drift=True), dict(loss_type="grpo", old=True, epsilon_low=3e-4,
                                                     epsilon_high=4e-4, importance_sampling_level="sequence")),
    "gspo-on-policy-kl": (dict(seed=28), dict(loss_type="grpo", ref=True, beta=0.1,
                                              importance_sampling_level="sequence")),
    "entropy": (dict(batch=2, length=5, hidden_size=8, vocab=70, seed=29), dict(old=True, temperature=0.8,
                                                                                with_entropy=True)),
}


def _counting(fn, name, calls):
    def wrapped(*args, **kwargs):
        calls.append(name)
        return fn(*args, **kwargs)
    return wrapped


def run_case(name: str) -> dict:
    """Runs in the interpreter subprocess: our Triton path vs the reference, max abs diff per output."""
    import importlib

    import torch

    from grpo_reference import reference_grpo_loss, reference_logprobs
    from grpo_studio.kernels import token_logprobs
    from grpo_studio.kernels import grpo_loss
    from test_grpo_loss import make_inputs

    module = importlib.import_module("grpo_studio.kernels.loss.functional")
    triton_module = importlib.import_module("grpo_studio.kernels.loss.triton_kernels")
    calls = []
    for fn_name in ("logprobs", "grads"):  # count launches: proves the Triton path ran, not the torch one
        setattr(triton_module, fn_name, _counting(getattr(triton_module, fn_name), fn_name, calls))

    input_kw, loss_kw = CASES[name]
    input_kw = dict(input_kw)
    empty_row, zero_adv = input_kw.pop("empty_row", None), input_kw.pop("zero_adv", False)
    seq_drift = input_kw.pop("seq_drift", False)
    hidden, weight, ids, mask, adv, old, ref = make_inputs(**input_kw)
    if seq_drift:  # whole sequences drift, so GSPO's sequence-level clip bites on some of them
        old = old + torch.tensor([0.5, -0.5, 0.05])[:, None]
    if empty_row is not None:
        mask[empty_row] = 0
    if zero_adv:
        adv = torch.zeros_like(adv)
    kw = dict(loss_kw)
    kw["old_logps"] = old if kw.pop("old", False) else None
    kw["ref_logps"] = ref if kw.pop("ref", False) else None
    if kw.get("loss_type") == "dr_grpo":
        kw["max_completion_length"] = 11
    wrt = [t for t in (hidden, weight) if t.requires_grad]
    ours = grpo_loss(hidden, weight, ids, mask, adv, **kw)
    ours_grads = torch.autograd.grad(ours.loss, wrt)
    expected = reference_grpo_loss(hidden, weight, ids, mask, adv, **kw)
    expected_grads = torch.autograd.grad(expected[0], wrt)
    temperature = kw.get("temperature", 1.0)
    names = ["loss", "logps", "kl", "clip_ratio", "grad_hidden", "grad_weight"][:4 + len(wrt)]
    pairs = list(zip(ours[:4], expected[:4])) + list(zip(ours_grads, expected_grads))
    if kw.get("with_entropy"):
        pairs.append((ours.entropy, expected[4]))
        names.append("entropy")
    pairs.append((token_logprobs(hidden, weight, ids, temperature), reference_logprobs(hidden, weight, ids,
                                                                                         temperature)))
    names.append("token_logprobs")
    diffs = {}
    for what, (a, e) in zip(names, pairs):
        diff = (a.float() - e.float()).abs().max().item() if a.numel() else 0.0
        diffs[what] = diff if torch.isfinite(a).all() else float("inf")
    return {"case": name, "uses_triton": module._uses_triton(hidden), "calls": calls, "diffs": diffs,
            "loss": ours.loss.item(), "clip_ratio": ours.clip_ratio.item()}


@pytest.fixture(scope="module")
def interpreter_results() -> dict:
    from triton_interpreter import interpreter_run

    return interpreter_run(HERE, timeout=300)


@pytest.mark.parametrize("name", list(CASES))
def test_triton_kernel_matches_reference(interpreter_results, name):
    result = interpreter_results[name]
    assert result["uses_triton"], "the subprocess fell back to the torch path"
    assert "logprobs" in result["calls"] and "grads" in result["calls"]
    bad = {k: v for k, v in result["diffs"].items() if not v <= ATOL}
    assert not bad, f"{name}: outputs off the reference by more than {ATOL}: {bad}"


def test_triton_cases_exercise_clipping_and_zero_loss(interpreter_results):
    assert 0 < interpreter_results["grpo-beta0.0-oldTrue"]["clip_ratio"] < 1
    assert interpreter_results["zero-advantages"]["loss"] == 0
    assert 0 < interpreter_results["gspo-old"]["clip_ratio"] < 1


if __name__ == "__main__":
    assert os.environ.get("TRITON_INTERPRET") == "1", "run through the tests (they set TRITON_INTERPRET=1)"
    sys.path.insert(0, str(HERE.parent))
    for case in sys.argv[1:] or CASES:
        print(json.dumps(run_case(case)), flush=True)
