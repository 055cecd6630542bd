"""The policy model: the causal LM (optionally 4-bit) with its LoRA adapter, loaded and checked.

Modules:
- device_choice: Choices the engine makes from the GPU it runs on: the compute dtype for `dtype: auto`
- files: Telling a damaged model folder from a bug: which file is broken, said plainly
- policy: The policy: a causal LM (optionally 4-bit NF4) with a LoRA adapter
"""
