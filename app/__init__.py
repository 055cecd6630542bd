"""GRPO Studio: GRPO training for one home GPU, with a desktop app."""

__version__ = "0.1.0"
