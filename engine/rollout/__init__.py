"""Generation: G sampled completions per prompt, on the lean decode path or Hugging Face generate.

Modules:
- decode: The lean decode loop: one prefill per distinct prompt, a preallocated KV cache, sampling done here
- generation: Generation: `num_generations` sampled completions per prompt, by one of two backends
- kv_cache: KV caches allocated once per rollout slice: [rows, kv_heads, prompt + completion
- row_rng: Per-completion random numbers that do not depend on how a step's completions are batched
- sampling: Next-token sampling with the run's settings
- weights: The weights generation runs on, and in which dtype, without touching the training weights
"""
