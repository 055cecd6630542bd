"""The GRPO training loop and what one step needs: prompts, advantages, micro-batches, the loss options,
the optimizer, metrics, out-of-memory recovery, and the collectives when several ranks train.

Modules:
- advantages: Group-relative advantages, as in TRL's GRPOTrainer, for both of its multi-objective aggregations
- control: Requests from clients (stop, pause, resume, save_now) as flags the loop reads between steps
- diagnostics: What a step's rewards say about the learning signal, as plain numbers for the metrics event
- dynamic_sampling: Dynamic sampling (DAPO): keep only groups whose rewards differ, refill the step with fresh prompts
- loop: The GRPO training loop, readable top to bottom
- loss_control: The loss options in the training loop: the fused loss's LossOptions for a micro-batch
- memory: The `memory` event's fields: GPU allocated / reserved / peak (None on CPU), process RSS
- micro_batches: A step's rollout cut into micro-batches for gradient accumulation
- oom: Out of memory: which failures count as one, the hint naming the setting to lower
- oom_recovery: Recovery from out-of-memory inside a step: free memory, halve the batch of the phase that ran out
- optim: The optimizer and Hugging Face's learning-rate schedules
- prompt_sampler: Which prompts each step trains on: shuffled passes over the dataset, resumable exactly
- rank_state: What the loop's step reports and saves when several ranks train together
- ranks: Data-parallel training on torch.distributed (launched by torchrun)
- sample_group: The `group` event: one prompt's G completions side by side, best to worst
- shared_prefix: The training forward with each prompt computed once for its G completions
- step_report: What a finished step tells its watchers: the `metrics` event, now and then a `sample` and its `group`
- step_metrics: The numbers a training step reports
"""
