"""Try the model: a prompt answered by the base model and the tuned one, once or as a served session.

Modules:
- answers: Try the model: one prompt answered by the base model (adapter off) and the tuned one (adapter on)
- serve: `grpo-studio chat RUN --serve --json`: the model stays loaded while the app's Try page is open
"""
