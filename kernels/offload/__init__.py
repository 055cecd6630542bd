"""Activation checkpoints offloaded to CPU RAM asynchronously: each layer's input copied to pinned host buffers
during the forward and brought back, one layer ahead, during the backward.

Modules:
- checkpointing: the wrapper around a transformers model's layers (`apply_offloaded_checkpointing`)
- pinned_pool: the pooled pinned host buffers and the copy stream they move on
"""
