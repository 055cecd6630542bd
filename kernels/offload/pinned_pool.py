"""A reusable pool of host buffers for offloaded activations, capped by a byte budget and free RAM.

Allocating pinned (page-locked) memory is slow, so every buffer is kept after its first use and handed out
again on the next step. An activation is stored in fixed-size chunks of raw bytes rather than one buffer of
its exact size, for two reasons:

- torch's pinned allocator rounds every request up to a power of two; 16 MiB chunks are one already, so a
  1.3 GB layer input costs 1.3 GB of RAM, not 2 GB;
- micro-batches whose sequence lengths differ still reuse the same chunks (only the count differs).

An activation smaller than one chunk takes a single power-of-two chunk of its own size instead.

The pool refuses a request (returns None) rather than go over its budget: the caller then keeps that
activation on the device. The budget is `max_bytes` when given, and otherwise whatever RAM is free minus a
safety margin (so the desktop, the data loader and the optimizer keep room), checked at each new allocation.

`CopyStream` moves an activation between the device and its leased chunks: on a side CUDA stream (so the
copy overlaps compute), or as plain copies on any other device.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

_GIB = 1 << 30
CHUNK_BYTES = 16 << 20


def available_ram_bytes() -> int:
    """RAM the OS could give us now (psutil when present, else sysconf; huge when neither can tell)."""
    try:
        import psutil  # a project dependency; imported here so importing kernels stays torch-only

        return int(psutil.virtual_memory().available)
    except ImportError:
        import os

        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 1 << 62


def ram_safety_margin() -> int:
    """RAM left untouched when the budget comes from free RAM: 2 GiB or 10% of the machine, the larger."""
    try:
        import psutil

        total = int(psutil.virtual_memory().total)
    except ImportError:
        total = 0
    return max(2 * _GIB, total // 10)


def chunk_bytes_for(nbytes: int) -> int:
    """Chunk size for an activation of nbytes: CHUNK_BYTES, or the next power of two when smaller."""
    return min(CHUNK_BYTES, 1 << max(nbytes - 1, 7).bit_length())  # at least 8 bytes: any dtype fits


@dataclass(eq=False)
class Lease:
    """Pooled chunks lent out for one activation of `numel` elements of `dtype`."""

    chunks: list[torch.Tensor]  # flat uint8 tensors, all of one size
    numel: int
    dtype: torch.dtype
    pinned: bool

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def pieces(self) -> Iterator[tuple[torch.Tensor, int]]:
        """(host slice typed as dtype, offset in elements) covering the activation in order."""
        start = 0
        for chunk in self.chunks:
            part = chunk.view(self.dtype)[: self.numel - start]
            yield part, start
            start += part.numel()


class PinnedPool:
    """Host chunks reused across steps; `acquire` returns None when the budget would be exceeded."""

    def __init__(self, max_bytes: int | None = None, ram_margin: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.ram_margin = ram_safety_margin() if ram_margin is None else ram_margin
        self._free: dict[tuple[int, bool], list[torch.Tensor]] = {}  # (chunk bytes, pinned) -> chunks
        self.allocated_bytes = 0  # all chunks, lent or free
        self.allocations = 0  # how many chunks were ever allocated (flat once warm)

    def acquire(self, numel: int, dtype: torch.dtype, pin: bool) -> Lease | None:
        nbytes = numel * dtype.itemsize
        size = chunk_bytes_for(nbytes)
        count = max(1, -(-nbytes // size))
        free = self._free.setdefault((size, pin), [])
        chunks = [free.pop() for _ in range(min(count, len(free)))]
        while len(chunks) < count:
            chunk = self._allocate(size, pin)
            if chunk is None:
                free.extend(chunks)
                return None
            chunks.append(chunk)
        return Lease(chunks, numel, dtype, pin)

    def release(self, lease: Lease) -> None:
        self._free.setdefault((lease.chunks[0].numel(), lease.pinned), []).extend(lease.chunks)

    def clear(self) -> None:
        """Forget the free chunks (lent ones come back later and are kept)."""
        for free in self._free.values():
            self.allocated_bytes -= sum(c.numel() for c in free)
            free.clear()

    def _allocate(self, size: int, pin: bool) -> torch.Tensor | None:
        # Free chunks of another size belong to activation sizes no longer in use: each new chunk retires
        # one of them (so the pool does not pile up), and more when the budget needs the room.
        self._drop_stale(size, pin)
        while not self._room_for(size) and self._drop_stale(size, pin):
            pass
        if not self._room_for(size):
            return None
        chunk = torch.empty(size, dtype=torch.uint8, pin_memory=pin)
        self.allocated_bytes += size
        self.allocations += 1
        return chunk

    def _drop_stale(self, size: int, pin: bool) -> bool:
        for key, free in self._free.items():
            if free and key != (size, pin):
                self.allocated_bytes -= free.pop().numel()
                return True
        return False

    def _room_for(self, nbytes: int) -> bool:
        if self.max_bytes is not None:
            return self.allocated_bytes + nbytes <= self.max_bytes
        return available_ram_bytes() - nbytes >= self.ram_margin


# -------------------------------------------------------------------------------------------- copy stream
class CopyStream:
    """Host <-> device copies on one side CUDA stream; plain synchronous copies on any other device."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None

    def to_host(self, src: torch.Tensor, lease: Lease) -> None:
        flat = src.reshape(-1)
        if self.stream is None:  # not cuda
            _copy_pieces(lease, flat, to_host=True)
            return
        self.stream.wait_stream(torch.cuda.current_stream(src.device))  # src is being written until then
        with torch.cuda.stream(self.stream):
            _copy_pieces(lease, flat, to_host=True)
        # The caller drops src next; the allocator must not hand its memory out before this copy has read it.
        flat.record_stream(self.stream)

    def to_device(self, lease: Lease, shape: torch.Size, device: torch.device) -> tuple[torch.Tensor, Any]:
        """Start copying the leased activation to device; returns the tensor and an event to wait on."""
        dst = torch.empty(lease.numel, dtype=lease.dtype, device=device)  # on the compute stream: freed there
        if self.stream is None:  # not cuda
            _copy_pieces(lease, dst, to_host=False)
            return dst.view(shape), None
        # dst may reuse memory the compute stream was still working on; the copy into it waits for that.
        self.stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(self.stream):
            _copy_pieces(lease, dst, to_host=False)
            event = torch.cuda.Event()
            event.record(self.stream)
        return dst.view(shape), event

    def wait(self, event: Any, device: torch.device) -> None:
        if event is not None:
            torch.cuda.current_stream(device).wait_event(event)


def _copy_pieces(lease: Lease, flat: torch.Tensor, to_host: bool) -> None:
    for piece, start in lease.pieces():
        part = flat[start:start + piece.numel()]
        (piece if to_host else part).copy_(part if to_host else piece, non_blocking=True)
