"""The fused GRPO loss: per-token log-probs and the GRPO objective from hidden states and the lm_head weight,
never materialising [batch, tokens, vocab] logits (Triton on CUDA, the same chunked algorithm in torch elsewhere).

Modules:
- functional: the autograd.Function and the functional wrappers `grpo_loss` / `token_logprobs` (start here)
- terms: the per-token terms of every loss type TRL's GRPOTrainer (1.16) offers, and their derivatives
- tokens: from the completion tokens' log-probs to each token's loss and its coefficients, which both backends use
- args: the loss types, importance-sampling levels, and the checks that fail a bad call before any compute
- triton_kernels: the Triton kernels (log-prob forward, gradient) and their launch
- configs: the autotune configs, pruned to what each card can launch
- compiled: generated table of each config's compiled shared memory, registers and spills per architecture
"""
