"""GRPO Studio kernels: math only (torch / triton), no engine or GUI imports."""
from .loss.functional import GRPOLossOutput, grpo_loss, token_logprobs
from .offload.checkpointing import OffloadHandle, apply_offloaded_checkpointing

__all__ = ["GRPOLossOutput", "grpo_loss", "token_logprobs", "OffloadHandle", "apply_offloaded_checkpointing"]
