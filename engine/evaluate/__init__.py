"""Held-out evaluation: accuracy on prompts the run never trained on, during training and afterwards.

Modules:
- adapter: `grpo-studio eval`: the held-out evaluation of a finished run, one of its checkpoints or any adapter
- held_out: Held-out evaluation: how well the model answers prompts it never trained on
"""
