"""One run folder and its engine process: the runner around the Trainer, the authenticated socket server,
locks, folder guards, `fit: auto`, and the terminal view of a run's events.

Modules:
- autofit: `fit: auto` for a new run, before any weights load: the fitted settings
- folder: Starting a run in a folder without destroying what is there
- folder_guard: The run folder removed while the engine trains (`rm -rf RUN`, the app's folder deleted by hand)
- lock: One engine per run folder: an exclusive
- progress: Terminal view of a run's events: a progress bar with ETA and the current mean reward
- runner: One training run in one run folder: the process-level wrapper around the Trainer
- server: The engine's live endpoint: an authenticated local socket that streams events and takes commands
- socket_dir: Where an engine's Unix socket lives: a fresh private folder with a short path
- summary: What a finished terminal run says at the end: how the reward moved
"""
