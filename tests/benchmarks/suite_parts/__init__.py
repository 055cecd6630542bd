"""The GPU suite\x27s parts (tests/benchmarks/gpu_suite.py runs them)."""
