"""Checkpoints: what a run saves to continue exactly where it stopped, and what a resume may change.

Modules:
- checkpoint: Checkpoints: everything needed to continue a run exactly where it stopped
- files: Checkpoint folders on disk, without torch: their names, which are complete, their configs, pruning
- resume_check: What a resume may change: the run's config against the one its checkpoint was written with
"""
