"""The memory model behind `grpo-studio estimate`: bytes per component for two plans, from plain arithmetic.

GRPO Studio's plan is what this engine does: base weights (4-bit NF4 or 16-bit) shared by generation and
training, LoRA + optimizer, each decoder layer's input checkpointed (and offloaded to CPU RAM), one layer's
internals rebuilt at a time in backward, the fused GRPO loss that never builds `[rows, vocab]` logits, and
generation with the same weights (no second copy). Generation and training happen one after the other, so
their working sets never coexist: the peak is persistent memory + the larger of the two phases. Within
training, the loss step and the recompute of one layer in backward never coexist either: the training phase
is the checkpoints plus the larger of the two.

The naive plan is a TRL-style trainer with FlashAttention-2: every activation of every layer kept for
backward, full logits and their gradient, and a separate 16-bit inference engine (vLLM) that holds its
weights and KV pool for the whole run. Everything coexists, so its peak is the sum of its components.

All sizes in bytes. B = completions per forward/backward (micro-batch), P / C = prompt / completion length,
T = P + C, h = hidden size, i = MLP intermediate size, qd / kvd = query / key-value widths, V = vocabulary,
L = layers. Torch-free: the GUI calls this on every keystroke.
"""
from __future__ import annotations

from dataclasses import dataclass

GIB = 1 << 30

# bitsandbytes NF4 with double quantisation (how engine/model/policy.py and the reward models load 4-bit): 4 bits per
# weight + one 8-bit absmax per 64 weights + one fp32 scale per 256 absmax values (the offset is one scalar per
# tensor) = 0.5 + 1/64 + 4/(64*256) ≈ 0.516 bytes per parameter.
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
# LoRA adapters live in fp32 (PEFT upcasts adapters of 16-bit models), so do their gradients. AdamW keeps
# two fp32 moments; bitsandbytes' 8-bit AdamW two 8-bit moments plus an fp32 scale per 256-value block.
LORA_PARAM_BYTES = 4
OPTIMIZER_STATE_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0 + 8 / 256}
# CUDA context, cuBLAS workspaces and loaded kernels (torch, bitsandbytes, Triton) before any tensor.
CUDA_CONTEXT = 640 << 20
# The inference engine of the naive plan (vLLM): tokens it prefills in one scheduler step (its
# max_num_batched_tokens), whose one-layer activations it reserves on top of weights and KV pool.
INFERENCE_BATCH_TOKENS = 8192
# Rows per chunk of the fused loss on its torch path: one chunk of fp32 logits stays near this many bytes
# (the same budget as kernels/loss/functional.py; its Triton path only keeps register tiles, so this bounds both).
LOSS_CHUNK_BYTES = 16 << 20
# Triton's autotuner flushes the L2 cache between timings with a buffer of this size (first step on CUDA).
AUTOTUNE_FLUSH_BYTES = 256 * 10**6

# Which projections exist per layer, as name -> (in_features, out_features) builders; Phi-3/4 fuse q/k/v and
# gate/up into one matrix each, everything else here is Llama-shaped.
_FUSED = {"phi3"}
_QK_NORM = {"qwen3", "gemma3", "gemma3_text", "olmo2"}
_FOUR_NORMS = {"gemma2", "gemma3", "gemma3_text"}


@dataclass(frozen=True)
class Arch:
    """The shape of a decoder-only transformer, read from config.json (see model_configs.py)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    model_type: str = "llama"
    attention_bias: bool = False

    @classmethod
    def from_config(cls, c: dict) -> Arch:
        return cls(c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["num_attention_heads"],
                   c["num_key_value_heads"], c["head_dim"], c["vocab_size"], bool(c["tie_word_embeddings"]),
                   str(c.get("model_type", "llama")), bool(c.get("attention_bias", False)))

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def projections(self) -> dict[str, tuple[int, int]]:
        h, i, q, kv = self.hidden, self.intermediate, self.q_dim, self.kv_dim
        if self.model_type in _FUSED:
            return {"qkv_proj": (h, q + 2 * kv), "o_proj": (q, h), "gate_up_proj": (h, 2 * i),
                    "down_proj": (i, h)}
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def linear_params(self) -> int:
        """Weights of the decoder layers' projections: the part 4-bit loading quantises."""
        return self.layers * sum(a * b for a, b in self.projections().values())

    def other_params(self) -> int:
        """Embeddings, lm_head (when untied), norms and biases: kept in 16 bits even with 4-bit loading."""
        norms = (4 if self.model_type in _FOUR_NORMS else 2) * self.hidden
        norms += 2 * self.head_dim if self.model_type in _QK_NORM else 0
        bias = self.q_dim + 2 * self.kv_dim if self.attention_bias else 0
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return embeddings + self.layers * (norms + bias) + self.hidden

    def params(self) -> int:
        return self.linear_params() + self.other_params()


@dataclass(frozen=True)
class Settings:
    """The run settings that move memory, flattened from TrainConfig. No defaults of its own: build it with
    estimate.settings_from_config(config), or estimate.default_settings(**changes) for TrainConfig's defaults."""

    load_in_4bit: bool
    dtype_bytes: int
    lora_r: int
    lora_targets: tuple[str, ...] | str
    optimizer: str
    num_generations: int
    prompts_per_step: int
    max_prompt_length: int
    max_completion_length: int
    micro_batch_size: int
    generation_batch_size: int | None
    chunk_size: int | None
    gradient_checkpointing: bool
    offload: bool
    entropy_pass: bool  # loss options that use each token's entropy (top-entropy, entropy bonus)
    sampler_logps: bool  # the sampler keeps its own log-probs (sampler correction, off-policy mask)

    @property
    def seq_len(self) -> int:
        return self.max_prompt_length + self.max_completion_length

    @property
    def completions_per_step(self) -> int:
        return self.prompts_per_step * self.num_generations

    @property
    def micro_batch(self) -> int:
        """Completions in one forward/backward: never more than a step has."""
        return min(self.micro_batch_size, self.completions_per_step)

    @property
    def generation_batch(self) -> int:
        """Completions generated at once (None = all of a step, like the engine)."""
        return min(self.generation_batch_size or self.completions_per_step, self.completions_per_step)


# ------------------------------------------------------------------------------------------- shared parts
def weights_bytes(arch: Arch, s: Settings) -> int:
    linear = NF4_BYTES if s.load_in_4bit else s.dtype_bytes
    return int(arch.linear_params() * linear + arch.other_params() * s.dtype_bytes)


def lora_targets(arch: Arch, targets: tuple[str, ...] | str) -> dict[str, tuple[int, int]]:
    """The projections a LoRA target list hits. Llama-style names also hit Phi's fused matrices."""
    projections = arch.projections()
    if targets == "all-linear":
        return projections
    wanted = set(targets)
    fused = {"qkv_proj": {"q_proj", "k_proj", "v_proj"}, "gate_up_proj": {"gate_proj", "up_proj"}}
    return {name: shape for name, shape in projections.items() if name in wanted or fused.get(name, set()) & wanted}


def lora_params(arch: Arch, s: Settings) -> int:
    # Each adapted projection gains A [r, in] and B [out, r].
    return arch.layers * sum(s.lora_r * (a + b) for a, b in lora_targets(arch, s.lora_targets).values())


def lora_and_optimizer_bytes(arch: Arch, s: Settings) -> int:
    per_param = 2 * LORA_PARAM_BYTES + OPTIMIZER_STATE_BYTES[s.optimizer]  # weight + gradient + moments
    return int(lora_params(arch, s) * per_param)


def layer_saved_bytes_per_token(arch: Arch, s: Settings) -> int:
    """What autograd keeps per token while one Hugging Face decoder layer (eager norms, SDPA/FA2 attention,
    PEFT LoRA without dropout, frozen base) waits for its backward."""
    b, h, i, q, kv = s.dtype_bytes, arch.hidden, arch.intermediate, arch.q_dim, arch.kv_dim
    targets = lora_targets(arch, s.lora_targets)
    norms = (4 if arch.model_type in _FOUR_NORMS else 2) * 4 * h  # RMSNorm upcasts its input to fp32
    qk_norm = 4 * (q + kv) if arch.model_type in _QK_NORM else 0  # the same for per-head q/k norms
    attention = b * (2 * q + 2 * kv) + 4 * arch.heads  # q, k, v after RoPE, output, fp32 log-sum-exp
    mlp = b * 3 * i  # SiLU keeps gate; the product keeps silu(gate) and up
    return norms + qk_norm + attention + mlp + lora_saved_bytes_per_token(arch, s, targets)


def lora_saved_bytes_per_token(arch: Arch, s: Settings, targets: dict[str, tuple[int, int]] | None = None) -> int:
    """What LoRA adds to a layer's saved tensors. PEFT keeps adapters in fp32 and, without autocast, each
    adapted module casts its input to fp32 for its A matrix, which keeps that copy for backward: q, k and v
    each hold their own fp32 copy of the normed hidden states (the frozen 16-bit base saves none). B keeps
    A's fp32 output [tokens, r]. An fp32 model casts nothing: modules reading the same input share it."""
    targets = lora_targets(arch, s.lora_targets) if targets is None else targets
    rank = LORA_PARAM_BYTES * s.lora_r * len(targets)
    if s.dtype_bytes != LORA_PARAM_BYTES:
        return rank + LORA_PARAM_BYTES * sum(a for a, _ in targets.values())
    # fp32: one input per group of modules reading the same tensor (o_proj's is the attention output,
    # which attention already keeps).
    groups = ({"q_proj", "k_proj", "v_proj", "qkv_proj"}, {"gate_proj", "up_proj", "gate_up_proj"}, {"down_proj"})
    widths = (arch.hidden, arch.hidden, arch.intermediate)
    return rank + LORA_PARAM_BYTES * sum(w for group, w in zip(groups, widths) if targets.keys() & group)


def backward_working_bytes_per_token(arch: Arch, s: Settings) -> int:
    """Gradients alive at the widest point of one layer's backward, besides the hidden-state gradients
    flowing in and out of the layer: either d(silu) and d(up) as d(product) is released, or, with LoRA on
    a 16-bit model, an adapted module's input gradient from the base beside LoRA's fp32 one and its cast."""
    b, i = s.dtype_bytes, arch.intermediate
    widest = 2 * b * i
    targets = lora_targets(arch, s.lora_targets)
    if targets and b != LORA_PARAM_BYTES:
        widest = max(widest, max((b + LORA_PARAM_BYTES + b) * a for a, _ in targets.values()))
    return b * 2 * arch.hidden + widest


def dequantized_weight_bytes(arch: Arch, s: Settings) -> int:
    """4-bit: bitsandbytes rebuilds a module's 16-bit weight for a multi-token matmul (forward with more than
    one token, and every backward): the largest projection, transient. Token-independent."""
    if not s.load_in_4bit:
        return 0
    return s.dtype_bytes * max(a * b for a, b in arch.projections().values())


def lora_forward_bytes_per_token(arch: Arch, s: Settings) -> int:
    """The peak per token of a no-grad forward (prefill) with peft's unmerged LoRA, inside its widest module:
    the residual stream and its normed copy, the MLP's other branch (SiLU(gate) while up runs), the base
    output, the fp32 input copy, B's scaled fp32 output and the fp32 sum with the base output (with 16-bit
    weights the base output's promoted fp32 copy beside them) and, with 4-bit, the defensive clone of the base
    output PEFT makes. Measured on the CPU by tests/benchmarks/bench_memory_model.py."""
    targets = lora_targets(arch, s.lora_targets)
    if not targets:
        return 0
    b = s.dtype_bytes
    cast = 0 if b == LORA_PARAM_BYTES else LORA_PARAM_BYTES
    fp32_outputs = 2 if b == LORA_PARAM_BYTES else 3
    clone = b if s.load_in_4bit else 0
    return max(b * (2 * arch.hidden + arch.intermediate + out) + cast * a + LORA_PARAM_BYTES * fp32_outputs * out
               + clone * out for a, out in targets.values())


def forward_working_bytes_per_token(arch: Arch, s: Settings) -> int:
    """One layer's transient tensors in a no-grad forward (prefill): q/k/v and attention output, gate, up and
    their product, the residual and the normed hidden states."""
    return s.dtype_bytes * (2 * arch.q_dim + 2 * arch.kv_dim + 3 * arch.intermediate + 2 * arch.hidden)


def kv_bytes_per_token(arch: Arch, s: Settings) -> int:
    return 2 * arch.layers * arch.kv_dim * s.dtype_bytes  # K and V, every layer


def kv_cache_bytes(arch: Arch, s: Settings) -> int:
    """The fast rollout's cache (engine/rollout/kv_cache.py): prompt + completion positions for each of the
    generation batch's rows, allocated once, plus the prefill cache of the slice's distinct prompts, which
    lives until it has been expanded into the rows."""
    return (s.generation_batch + prefilled_prompts(s)) * s.seq_len * kv_bytes_per_token(arch, s)


def prefilled_prompts(s: Settings) -> int:
    """Distinct prompts in one generation slice: each is prefilled once and shared by its G completions (a
    slice that does not start on a prompt boundary can hold one more)."""
    rows, group = s.generation_batch, s.num_generations
    return rows // group if rows % group == 0 else min(rows, -(-(rows - 1) // group) + 1)


def _sampling_bytes(arch: Arch, sequences: int) -> int:
    return 2 * sequences * arch.vocab * 4  # the last position's fp32 logits and the probabilities sampled from


# ------------------------------------------------------------------------------------------ GRPO Studio
def grpo_studio_plan(arch: Arch, s: Settings) -> dict:
    """Components, phases and peak of this engine's plan. Keys of `components` are stable (GUI legend)."""
    tokens = s.micro_batch * s.seq_len  # tokens in one forward/backward
    rows = s.micro_batch * s.max_completion_length  # rows of the GRPO loss
    hidden_state = tokens * arch.hidden * s.dtype_bytes  # one [B, T, h] tensor
    if not s.gradient_checkpointing:
        # Every layer keeps its internals; only the backward's working set comes on top.
        activations = arch.layers * tokens * layer_saved_bytes_per_token(arch, s) + hidden_state
        recompute = tokens * backward_working_bytes_per_token(arch, s)
        host = 0
    else:
        # Checkpoints: one [B, T, h] input per layer. Offloaded, only the layer being recomputed and the one
        # prefetched behind it are on the GPU; the final hidden states (the loss's input) always are.
        kept = 2 if s.offload else arch.layers
        activations = (min(kept, arch.layers) + 1) * hidden_state
        host = arch.layers * hidden_state if s.offload else 0
        recompute = tokens * (layer_saved_bytes_per_token(arch, s) + backward_working_bytes_per_token(arch, s))
    recompute += dequantized_weight_bytes(arch, s)
    logits = loss_bytes(arch, s, tokens, rows)
    kv_cache = kv_cache_bytes(arch, s)
    # The prefill's peak (inside a layer) and the decode loop's sampling buffers never coexist; the KV cache
    # lives through both.
    prefill = (prefilled_prompts(s) * s.max_prompt_length
               * max(forward_working_bytes_per_token(arch, s), lora_forward_bytes_per_token(arch, s))
               + dequantized_weight_bytes(arch, s))
    sampling = _sampling_bytes(arch, s.generation_batch)
    if s.sampler_logps:  # each step's logits / temperature and its log-sum-exp, and the kept log-probs
        sampling += _sampling_bytes(arch, s.generation_batch) + s.generation_batch * s.max_completion_length * 4
    generation = max(prefill, sampling)
    components = {
        "weights": weights_bytes(arch, s),
        "lora_and_optimizer": lora_and_optimizer_bytes(arch, s),
        "activations": activations,
        "recompute": recompute,
        "logits": logits,
        "kv_cache": kv_cache,
        "generation_workspace": generation,
        "inference_weights": 0,  # generation runs on the training weights, adapter on
        "cuda_overhead": CUDA_CONTEXT,
    }
    persistent = components["weights"] + components["lora_and_optimizer"] + CUDA_CONTEXT
    # The loss's buffers are gone before the first layer is recomputed: the two never coexist.
    phases = {"generation": kv_cache + generation, "training": activations + max(recompute, logits)}
    peak_phase = max(phases, key=lambda phase: phases[phase])
    return {"components": _ints(components), "total": int(persistent + phases[peak_phase]),
            "peak_phase": peak_phase, "phases": _ints(phases), "host_ram": int(host)}


def loss_bytes(arch: Arch, s: Settings, tokens: int, rows: int, triton: bool = True) -> int:
    """The loss step of one micro-batch (`tokens` in the forward, `rows` completion positions). Throughout:
    the final norm's fp32 input, kept for its backward. Forward: the contiguous 16-bit copy of the sliced
    hidden rows, the fused loss's fp32 gradient w.r.t. them, one chunk of fp32 logits (torch path) or
    Triton's autotune flush buffer (first CUDA step), per-row fp32 log-probs, log-sum-exp, old/ref log-probs.
    Backward: the 16-bit copy of that gradient beside the fp32 one, then the zero-filled gradient of the
    whole [B, T, h] output the rows were sliced from."""
    b, h = s.dtype_bytes, arch.hidden
    chunk_rows = s.chunk_size or max(1, LOSS_CHUNK_BYTES // (4 * arch.vocab))
    # The torch path's chunk: its fp32 logits buffer and, with 16-bit weights, one 16-bit [chunk, V] transient
    # beside it (the matmul's output before the copy in, later the cast before the gradient matmul), as
    # measured on the CPU (tests/benchmarks/bench_memory_model.py). triton=False: the torch path alone, whose
    # gradient w.r.t. the rows is formed in their own dtype (no fp32 buffer, no copy in backward).
    chunk = min(chunk_rows, rows) * arch.vocab * (4 + (b if b != 4 else 0))
    scratch = max(chunk, AUTOTUNE_FLUSH_BYTES) if triton else chunk
    grad = 4 if triton else b
    forward = rows * h * (b + grad) + scratch + rows * 16
    if s.entropy_pass:  # per-row entropy and its coefficient; the torch path's p log p slice (<= 4096 columns)
        forward += rows * 8 + min(chunk_rows, rows) * min(arch.vocab, 4096) * 4
    if s.sampler_logps:  # the sampler's log-probs, the correction's ratio and the options' masks per row
        forward += rows * 12
    backward = max(rows * h * (grad + b) if triton else 0, rows * h * b + tokens * h * b)
    return tokens * h * 4 + max(forward, backward)


# ------------------------------------------------------------------------------------------------ naive
def naive_activation_bytes_per_token_layer(arch: Arch, s: Settings) -> int:
    """Full activation storage as the published TRL+FA2 comparison counts it: one 16-bit tensor per
    projection output (q, k, v, o, gate, up, down) for every token and layer. Autograd in an unfused layer
    keeps more (layer_saved_bytes_per_token: fp32 norm inputs, the SwiGLU intermediates), so this column is
    a floor and never overstates what GRPO Studio saves."""
    return s.dtype_bytes * sum(out for _, out in arch.projections().values())


def naive_plan(arch: Arch, s: Settings) -> dict:
    tokens = s.micro_batch * s.seq_len
    rows = s.micro_batch * s.max_completion_length
    # vLLM holds 16-bit weights plus one prefill step's activations and the sampler's logits.
    inference = (arch.params() * 2 + INFERENCE_BATCH_TOKENS * forward_working_bytes_per_token(arch, s)
                 + _sampling_bytes(arch, s.generation_batch))
    components = {
        "weights": weights_bytes(arch, s),
        "lora_and_optimizer": lora_and_optimizer_bytes(arch, s),
        "activations": arch.layers * tokens * naive_activation_bytes_per_token_layer(arch, s),
        "recompute": 0,  # nothing is recomputed: everything was stored
        # [rows, V] logits in 16 bits kept for backward, and their gradient of the same size in backward.
        "logits": 2 * rows * arch.vocab * s.dtype_bytes,
        # vLLM will not start without room for one full-length sequence: its smallest KV pool.
        "kv_cache": s.seq_len * kv_bytes_per_token(arch, s),
        "generation_workspace": 0,  # inside inference_weights: the engine reserves it up front
        "inference_weights": inference,
        "cuda_overhead": CUDA_CONTEXT,
    }
    return {"components": _ints(components), "total": int(sum(components.values())), "peak_phase": "all",
            "phases": {}, "host_ram": 0}


def _ints(values: dict) -> dict:
    return {key: int(value) for key, value in values.items()}
