"""RAM-offloaded gradient checkpointing for the decoder layers of a Hugging Face model.

Plain gradient checkpointing keeps each decoder layer's input on the GPU until backward; for long contexts
those layer-boundary activations alone are tens of GB. Here each layer runs as one autograd node that:

- forward: starts copying the layer's input hidden states into a pooled pinned host buffer on a side CUDA
  stream (overlapping the layer's own compute), runs the layer without building a graph, and lets go of the
  GPU copy (`record_stream` keeps the allocator from reusing it before the copy is done);
- backward: takes the input back (already on its way: the layer after it started the transfer), issues the
  transfer for the layer before it on the side stream, recomputes the layer with the RNG and autocast state
  of the forward pass, and backpropagates through the recomputed graph, like reentrant checkpointing.

Only the hidden states are saved. Masks, position embeddings and other arguments are shared by all layers,
so they are kept by reference; the ones that require grad become inputs of the node so gradients reach them.
`offload=False` keeps the input on the device instead: plain checkpointing through the same code, the
baseline of the tests and the benchmark. On CPU the same path runs: the "offload" is a plain copy into the
pooled buffer and the streams are no-ops, so it is tested without a GPU.

Read top to bottom: finding the decoder layers, one saved input, the autograd node, the per-layer wrapper,
and the handle that `apply_offloaded_checkpointing` returns. The host buffers and the side-stream copies into
and out of them are in pinned_pool.py.
"""
from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .pinned_pool import CopyStream, Lease, PinnedPool

_GIB = 1 << 30


# ----------------------------------------------------------------------------------------- finding layers
def find_decoder_layers(model: nn.Module) -> list[nn.ModuleList]:
    """The ModuleLists of decoder layers in `model` (a transformers model, peft-wrapped or not).

    A stack is a ModuleList whose entries are all `*DecoderLayer` classes (hybrid models mix several);
    failing that, one whose entries derive from transformers' `GradientCheckpointingLayer` (checked by name:
    kernels import torch only).
    """
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]

    def all_layers(stack: nn.ModuleList, test: Callable[[type], bool]) -> bool:
        return all(test(type(layer)) for layer in stack)

    decoders = [s for s in lists if all_layers(s, lambda c: c.__name__.endswith("DecoderLayer"))]
    if not decoders:
        decoders = [s for s in lists
                    if all_layers(s, lambda c: any(k.__name__ == "GradientCheckpointingLayer" for k in c.__mro__))]
    if not decoders:
        raise ValueError(f"Found no decoder layers in {type(model).__name__}: offloaded checkpointing needs a "
                         "model whose decoder layers sit in an nn.ModuleList (e.g. model.model.layers).")
    return decoders


# -------------------------------------------------------------------------------------------- saved input
class _SavedInput:
    """One layer call's input: in a host buffer (offloaded) or on the device (kept through ctx)."""

    def __init__(self, handle: OffloadHandle, hidden: torch.Tensor, lease: Lease | None,
                 prev: _SavedInput | None) -> None:
        self.shape, self.dtype, self.device = hidden.shape, hidden.dtype, hidden.device
        self.lease = lease
        self.prev = prev  # the layer before this one in the same forward pass: needed right after this one
        self.prefetched: tuple[torch.Tensor, Any] | None = None
        nbytes = hidden.numel() * hidden.element_size()
        # Runs when backward is done with this input, or when its graph is dropped without a backward.
        self.finish = weakref.finalize(self, handle._forget, nbytes, lease)

    @property
    def offloaded(self) -> bool:
        return self.lease is not None

    def prefetch(self, stream: CopyStream) -> None:
        if self.lease is not None and self.prefetched is None and self.finish.alive:  # offloaded
            self.prefetched = stream.to_device(self.lease, self.shape, self.device)

    def load(self, stream: CopyStream) -> torch.Tensor:
        self.prefetch(stream)
        assert self.prefetched is not None  # load() is for offloaded inputs, whose backward has not run yet
        tensor, event = self.prefetched
        stream.wait(event, self.device)
        self.prefetched = None
        return tensor


# ---------------------------------------------------------------------------------------- autograd node
def _split_grad_tensors(obj: Any, found: list[torch.Tensor]) -> Any:
    """Replace tensors that require grad (in plain tuples, lists, dicts) with _Slot markers."""
    if isinstance(obj, torch.Tensor):
        if obj.requires_grad:
            found.append(obj)
            return _Slot(len(found) - 1)
        return obj
    if type(obj) in (tuple, list):
        return type(obj)(_split_grad_tensors(o, found) for o in obj)
    if type(obj) is dict:
        return {k: _split_grad_tensors(v, found) for k, v in obj.items()}
    return obj


def _fill(obj: Any, tensors: tuple[torch.Tensor, ...]) -> Any:
    if isinstance(obj, _Slot):
        return tensors[obj.index]
    if type(obj) in (tuple, list):
        return type(obj)(_fill(o, tensors) for o in obj)
    if type(obj) is dict:
        return {k: _fill(v, tensors) for k, v in obj.items()}
    return obj


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _LayerCall:
    """What a recompute needs besides the hidden states: the forward, its other arguments, RNG and autocast."""

    def __init__(self, handle: OffloadHandle, forward: Callable, args: tuple, kwargs: dict,
                 stack: int, index: int) -> None:
        self.handle, self.forward, self.stack, self.index = handle, forward, stack, index
        self.grad_tensors: list[torch.Tensor] = []
        self.args = _split_grad_tensors(args, self.grad_tensors)
        self.kwargs = _split_grad_tensors(kwargs, self.grad_tensors)
        self.out_template: Any = None  # the layer's output with tensors replaced by slots

    def run(self, hidden: torch.Tensor, grad_tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        out = self.forward(hidden, *_fill(self.args, grad_tensors), **_fill(self.kwargs, grad_tensors))
        tensors: list[torch.Tensor] = []
        self.out_template = _split_all_tensors(out, tensors)
        return tuple(tensors)

    def stash_state(self, device: torch.device) -> None:
        # Like torch.utils.checkpoint: the recompute must draw the same dropout masks and cast the same way.
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        self.autocast = [(t, torch.is_autocast_enabled(t), torch.get_autocast_dtype(t))
                         for t in dict.fromkeys([device.type, "cpu"])]

    @contextlib.contextmanager
    def replay_state(self, device: torch.device):
        devices = [device] if self.cuda_rng is not None else []
        with torch.random.fork_rng(devices=devices), contextlib.ExitStack() as stack:
            torch.set_rng_state(self.cpu_rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state(self.cuda_rng, device)
            for device_type, enabled, dtype in self.autocast:
                stack.enter_context(torch.autocast(device_type, dtype=dtype, enabled=enabled))
            yield


def _split_all_tensors(obj: Any, found: list[torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        found.append(obj)
        return _Slot(len(found) - 1)
    if isinstance(obj, (tuple, list)):
        parts = [_split_all_tensors(o, found) for o in obj]
        return tuple(parts) if isinstance(obj, tuple) else parts
    return obj


class _OffloadedCheckpoint(torch.autograd.Function):
    """One checkpointed layer call. Inputs: the call, hidden states, an anchor that requires grad (so the
    node is part of the graph when only the layer's own weights, e.g. LoRA, need gradients), and the argument
    tensors that require grad."""

    @staticmethod
    def forward(ctx, call: _LayerCall, hidden: torch.Tensor, anchor: torch.Tensor, *grad_tensors):
        ctx.set_materialize_grads(False)
        call.stash_state(hidden.device)
        ctx.call, ctx.saved = call, call.handle._save(hidden, call)
        if not ctx.saved.offloaded:
            ctx.save_for_backward(hidden)  # autograd checks it was not modified in place
        return call.run(hidden, grad_tensors)  # grad mode is off inside Function.forward

    @staticmethod
    def backward(ctx, *grad_outputs):
        if not torch.autograd._is_checkpoint_valid():
            raise RuntimeError("Offloaded checkpointing works with loss.backward(), not torch.autograd.grad(): "
                               "the recomputed layer accumulates into .grad directly.")
        call, saved, handle = ctx.call, ctx.saved, ctx.call.handle
        if not saved.finish.alive:
            raise RuntimeError("This offloaded checkpoint was already used by a backward pass; backward twice "
                               "through the same forward (retain_graph=True) is not supported.")
        stream = handle._stream(saved.device)
        handle.prefetch_hits += saved.prefetched is not None
        hidden = saved.load(stream) if saved.offloaded else ctx.saved_tensors[0]
        if saved.prev is not None:
            saved.prev.prefetch(stream)  # the layer before this one is next: overlap its transfer
        hidden = hidden.detach().requires_grad_(ctx.needs_input_grad[1])
        grad_tensors = tuple(t.detach().requires_grad_(True) for t in call.grad_tensors)
        with call.replay_state(hidden.device), torch.enable_grad():
            outputs = call.run(hidden, grad_tensors)
        pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None and o.requires_grad]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        saved.prev = None
        saved.finish()
        return (None, hidden.grad, None, *(t.grad for t in grad_tensors))


# ---------------------------------------------------------------------------------------- layer wrapper
_CACHE_KWARGS = ("cache", "past_key_value", "past_key_values", "layer_past")


def _wrap_forward(handle: OffloadHandle, layer: Any, forward: Callable, stack: int,  # layer: a transformers one
                  index: int) -> Callable:
    def checkpointed_forward(*args, **kwargs):
        if args:
            hidden, args = args[0], args[1:]
        else:
            hidden = kwargs.pop("hidden_states", None)
        needs_grad = torch.is_grad_enabled() and isinstance(hidden, torch.Tensor) and (
            hidden.requires_grad or any(p.requires_grad for p in layer.parameters())
            or _any_requires_grad(args) or _any_requires_grad(kwargs))
        if not needs_grad:  # generation, or no_grad scoring: nothing to save, run as is
            return forward(hidden, *args, **kwargs)
        # transformers' own checkpointing would run inside this one and recompute every layer twice.
        if getattr(layer, "gradient_checkpointing", False):
            layer.gradient_checkpointing = False
        # The recompute would write the KV cache a second time. A training forward has no use for one, and
        # transformers drops it under its own checkpointing the same way (models build a cache by default).
        if not getattr(layer, "_can_checkpoint_with_cache", False):
            for name in _CACHE_KWARGS:
                if kwargs.get(name) is not None:
                    kwargs[name] = None
            if kwargs.get("use_cache"):
                kwargs["use_cache"] = False
        call = _LayerCall(handle, forward, args, kwargs, stack, index)
        outputs = _OffloadedCheckpoint.apply(call, hidden, handle._anchor, *call.grad_tensors)
        return _fill(call.out_template, outputs)

    # marks a wrapped layer; a function attribute, which mypy does not model
    checkpointed_forward.offload_handle = handle  # type: ignore[attr-defined]
    return checkpointed_forward


def _any_requires_grad(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return obj.requires_grad
    if isinstance(obj, (tuple, list)):
        return any(_any_requires_grad(o) for o in obj)
    if isinstance(obj, dict):
        return any(_any_requires_grad(v) for v in obj.values())
    return False


# ----------------------------------------------------------------------------------------------- handle
class OffloadHandle:
    """Returned by `apply_offloaded_checkpointing`: byte counters (`stats`) and `remove()`."""

    def __init__(self, stacks: list[nn.ModuleList], offload: bool, max_pinned_bytes: int | None,
                 on_warning: Callable[[str], None] | None) -> None:
        self.offload = offload
        self.pool = PinnedPool(max_bytes=max_pinned_bytes)
        self._on_warning = on_warning
        self._warned = False
        self._anchor = torch.empty(0, requires_grad=True)
        self._streams: dict[torch.device, CopyStream] = {}
        self._last: weakref.ReferenceType | None = None  # the newest saved input, to chain the next one
        self._last_key: tuple[int, int] | None = None
        self.offloaded = self.offloaded_peak = 0
        self.device_saved = self.device_saved_peak = 0
        self.prefetch_hits = 0  # backward found the input already on its way back (all but the last layer)
        self._originals: list[tuple[nn.Module, Any, Any]] = []
        for stack_index, stack in enumerate(stacks):
            for index, layer in enumerate(stack):
                self._originals.append((layer, layer.__dict__.get("forward"),
                                        layer.__dict__.get("gradient_checkpointing")))
                if getattr(layer, "gradient_checkpointing", False):  # a transformers layer's flag (not typed)
                    layer.gradient_checkpointing = False  # type: ignore[assignment]
                layer.forward = _wrap_forward(self, layer, layer.forward, stack_index, index)

    # --- public
    def stats(self) -> dict[str, int]:
        """Bytes held off-device now and at peak, and the peak of inputs kept on the device instead."""
        return {"offloaded": self.offloaded, "offloaded_peak": self.offloaded_peak,
                "device_saved_bytes_peak": self.device_saved_peak, "device_saved": self.device_saved,
                "pinned_bytes": self.pool.allocated_bytes, "pinned_allocations": self.pool.allocations,
                "prefetch_hits": self.prefetch_hits}

    def reset_peaks(self) -> None:
        """Start the peaks again from the current values (e.g. once per training step)."""
        self.offloaded_peak, self.device_saved_peak = self.offloaded, self.device_saved

    def remove(self) -> None:
        """Give every layer back its original forward (and transformers' checkpointing flag)."""
        for layer, forward, flag in self._originals:
            if forward is None:
                layer.__dict__.pop("forward", None)
            else:
                layer.forward = forward
            if flag is None:
                layer.__dict__.pop("gradient_checkpointing", None)
            else:
                layer.gradient_checkpointing = flag
        self._originals.clear()
        self.pool.clear()

    # --- used by the autograd node
    def _stream(self, device: torch.device) -> CopyStream:
        stream = self._streams.get(device)
        if stream is None:
            stream = self._streams[device] = CopyStream(device)
        return stream

    def _save(self, hidden: torch.Tensor, call: _LayerCall) -> _SavedInput:
        lease = None
        if self.offload:
            lease = self.pool.acquire(hidden.numel(), hidden.dtype, pin=hidden.device.type == "cuda")
            if lease is None:
                self._warn_once(self._ram_message(hidden))
        last = self._last() if self._last is not None else None
        prev = last if self._last_key == (call.stack, call.index - 1) else None
        saved = _SavedInput(self, hidden, lease, prev)
        self._last, self._last_key = weakref.ref(saved), (call.stack, call.index)
        nbytes = hidden.numel() * hidden.element_size()
        if lease is not None:
            self._stream(hidden.device).to_host(hidden, lease)
            self.offloaded += nbytes
            self.offloaded_peak = max(self.offloaded_peak, self.offloaded)
        else:
            self.device_saved += nbytes
            self.device_saved_peak = max(self.device_saved_peak, self.device_saved)
        return saved

    def _forget(self, nbytes: int, lease: Lease | None) -> None:
        if lease is not None:
            self.offloaded -= nbytes
            self.pool.release(lease)
        else:
            self.device_saved -= nbytes

    def _ram_message(self, hidden: torch.Tensor) -> str:
        if self.pool.max_bytes is not None:
            budget = f"the pinned-memory cap of {self.pool.max_bytes / _GIB:.2f} GiB"
        else:
            budget = f"free RAM (keeping {self.pool.ram_margin / _GIB:.1f} GiB for the system)"
        return (f"Activation offloading ran out of room: {budget} is used up, so the remaining layer inputs "
                f"stay on {hidden.device} (plain checkpointing, more device memory). Free some RAM, shorten "
                "the context or lower the micro-batch to offload everything.")

    def _warn_once(self, message: str) -> None:
        if self._warned:
            return
        self._warned = True
        if self._on_warning is not None:
            self._on_warning(message)


def apply_offloaded_checkpointing(model: nn.Module, *, offload: bool = True, max_pinned_bytes: int | None = None,
                                  on_warning: Callable[[str], None] | None = None) -> OffloadHandle:
    """Checkpoint every decoder layer of `model`, saving only its input hidden states — in pinned host RAM
    when `offload` (the default), on the device otherwise. Pinned memory is capped by `max_pinned_bytes`, or
    by free RAM minus a safety margin; past the cap the remaining inputs stay on the device and `on_warning`
    is called once. Call `handle.remove()` to restore the original forwards."""
    if max_pinned_bytes is not None and max_pinned_bytes < 0:
        raise ValueError(f"max_pinned_bytes must be >= 0 or None, got {max_pinned_bytes}")
    stacks = find_decoder_layers(model)
    if any(hasattr(layer.forward, "offload_handle") for stack in stacks for layer in stack):
        raise ValueError("Offloaded checkpointing is already applied to this model; call remove() on its "
                         "handle first (wrapping twice would recompute every layer twice).")
    return OffloadHandle(stacks, offload, max_pinned_bytes, on_warning)
