"""Text cut to a width for one-line messages and table cells (torch-free: the GUI uses it too)."""
from __future__ import annotations


def clip(text: str, width: int) -> str:
    """`text` if it fits in `width` characters, else its first width - 1 and an ellipsis."""
    return text if len(text) <= width else text[:width - 1] + "…"
