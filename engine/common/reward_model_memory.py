"""What a reward model (`rewards: [{model: ...}]`) costs on the training device, and the two settings of its
scoring that decide it. engine/rewards/model.py scores with these settings; the estimator (estimate.py) counts
this figure, torch-free, so the GUI's estimate needs nothing outside engine/common."""
from __future__ import annotations

from grpo_studio.engine.common.estimate_model import NF4_BYTES, Arch

BATCH_SIZE = 8  # completions scored at once
MAX_LENGTH = 4096  # tokens of prompt + completion the reward model sees (longer inputs are cut)


def memory_bytes(model_config: dict, load_in_4bit: bool, dtype_bytes: int, seq_len: int) -> int:
    """Weights (decoder projections in NF4 when 4-bit, the rest in 16 bits) plus one batch's forward working
    set (a layer's hidden states and MLP intermediates), from the config.json essentials."""
    # a sequence-classification model has no lm_head (its score head is one row per label): count it tied
    arch = Arch.from_config({**model_config, "tie_word_embeddings": True})
    weights = arch.linear_params() * (NF4_BYTES if load_in_4bit else dtype_bytes) + arch.other_params() * dtype_bytes
    tokens = BATCH_SIZE * min(seq_len, MAX_LENGTH)
    return int(weights + tokens * (4 * arch.hidden + 2 * arch.intermediate) * dtype_bytes)
