"""Rewards: the user's functions and reward models, called safely on a batch, checked and weighted.

Modules:
- model: A sequence-classification model as a reward function (`rewards: [{model: ID-or-folder}]`)
- scoring: Reward functions: load them from the config, call them on a batch, check what they return
- user_code: Calling the user's reward functions without letting them take the engine down
"""
