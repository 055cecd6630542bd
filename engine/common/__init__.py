"""What the engine process and the GUI share: config, protocol, run store, client, launcher, estimator, hub
names. Torch-free (tests/test_architecture.py checks it), so the GUI can import it and start fast."""
