"""Several ranks under torchrun: launching them, the worker ranks, and stop/pause/save on every rank at once.

Modules:
- control: stop / pause / save_now on every rank at the same step boundary: rank 0's flags
- launch: The runner's side of torchrun: join the process group, hand ranks > 0 to the worker
- torchrun: `grpo-studio train ... --gpus N`: start the engine as N ranks per machine under torchrun
- worker: A training rank other than rank 0 under torchrun
"""
