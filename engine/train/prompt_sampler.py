"""Which prompts each step trains on: shuffled passes over the dataset, resumable exactly."""
from __future__ import annotations

import torch


class PromptSampler:
    """Shuffled passes over the dataset (a fresh permutation per epoch from the seed); its position is
    part of every checkpoint, so a resumed run sees exactly the prompts an uninterrupted one would."""

    def __init__(self, size: int, batch: int, seed: int) -> None:
        self.size, self.batch, self.seed = size, batch, seed
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        return torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()

    def next(self) -> list[int]:
        picked: list[int] = []
        while len(picked) < self.batch:
            if self.index == self.size:
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = min(self.batch - len(picked), self.size - self.index)
            picked += self._order[self.index:self.index + take]
            self.index += take
        return picked

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._permutation(self.epoch)
