"""One module per `grpo-studio` command; see grpo_studio.engine.cli for the contract."""
