"""RAM-offloaded checkpointing (kernels/offload/checkpointing.py) on CPU: the same code path as on CUDA, with plain copies.

Gradients are compared across three runs of the same model and batch: no checkpointing, plain checkpointing
through the wrapper (offload=False) and offloading. LoRA dropout is on, so a recompute that drew different
random numbers would show up as a gradient mismatch.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from grpo_studio.kernels.offload import pinned_pool
from grpo_studio.kernels.offload.checkpointing import apply_offloaded_checkpointing, find_decoder_layers

B, T, LAYERS, HIDDEN = 2, 7, 3, 32
LAYER_BYTES = B * T * HIDDEN * 4  # one layer's input hidden states, fp32


def lora_model(path, arch="llama", layers=LAYERS, dropout=0.1):
    from peft import LoraConfig, get_peft_model
    from tiny_models import build_model

    model, _ = build_model(path, arch, hidden_size=HIDDEN, layers=layers)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"])
    model = get_peft_model(model, config)
    # LoRA B starts at zero; give it values so every gradient path carries signal.
    torch.manual_seed(3)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(p, std=0.05)
    return model.train()


def batch(seed=0, t=T):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 200, (B, t), generator=g)


def train_step(model, ids, embeds_grad=False):
    """One micro-batch: forward with a fixed seed (dropout), backward, return loss and trainable grads."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1234)
    kwargs = {"input_ids": ids}
    embeds = None
    if embeds_grad:
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        kwargs = {"inputs_embeds": embeds}
    out = model(**kwargs, labels=ids, use_cache=False)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    if embeds is not None:
        grads["inputs_embeds"] = embeds.grad.clone()
    return out.loss.detach(), grads


def assert_close(a: dict, b: dict, atol=1e-6):
    assert a.keys() == b.keys()
    worst = {k: (a[k] - b[k]).abs().max().item() for k in a}
    bad = {k: v for k, v in worst.items() if not v <= atol}
    assert not bad, f"gradients differ (max abs): {dict(list(bad.items())[:5])}"
    assert all(a[k].abs().sum() > 0 for k in a if "lora_B" in k), "no gradient reached LoRA B"


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_gradients_equal_plain_and_no_checkpointing(tmp_path, arch):
    model = lora_model(tmp_path, arch)
    ids = batch()
    loss0, reference = train_step(model, ids)
    results = {}
    for offload in (False, True):
        handle = apply_offloaded_checkpointing(model, offload=offload)
        results[offload] = train_step(model, ids)
        handle.remove()
    for offload, (loss, grads) in results.items():
        assert torch.equal(loss, loss0), offload
        assert_close(grads, reference)
    assert_close(results[True][1], results[False][1], atol=0.0)  # same recompute: bit for bit


@pytest.mark.parametrize("arch", ["qwen3", "mistral", "gemma2"])
def test_other_architectures_and_input_gradients(tmp_path, arch):
    model = lora_model(tmp_path, arch, layers=2)
    ids = batch()
    _, reference = train_step(model, ids, embeds_grad=True)
    handle = apply_offloaded_checkpointing(model)
    _, grads = train_step(model, ids, embeds_grad=True)
    assert handle.stats()["offloaded_peak"] == 2 * LAYER_BYTES
    handle.remove()
    assert_close(grads, reference)


def test_4bit_layers_with_lora(tmp_path, four_bit_on_cpu):
    from peft import LoraConfig, get_peft_model
    from tiny_models import build_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    build_model(tmp_path, "qwen2", hidden_size=64, layers=2)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quant, device_map="cpu")
    assert type(base.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1,
                                            target_modules=["q_proj", "v_proj", "up_proj"])).train()
    for name, p in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(p, std=0.05)
    ids = batch()
    _, reference = train_step(model, ids)
    handle = apply_offloaded_checkpointing(model)
    _, grads = train_step(model, ids)
    assert handle.stats()["offloaded_peak"] == 2 * B * T * 64 * 4
    handle.remove()
    assert_close(grads, reference)


def saved_bytes_in_layers(model, ids) -> int:
    """Bytes autograd saves for backward while the decoder layers run (pack hooks around each layer call)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    contexts, hooks = [], []
    for layer in find_decoder_layers(model)[0]:
        def enter(*_):
            contexts.append(torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
            contexts[-1].__enter__()

        def leave(*_):
            contexts.pop().__exit__(None, None, None)

        hooks += [layer.register_forward_pre_hook(enter), layer.register_forward_hook(leave)]
    model(input_ids=ids, use_cache=False).logits.sum().backward()
    for h in hooks:
        h.remove()
    return total


def test_device_resident_bytes_one_layer_with_offload_all_layers_without(tmp_path):
    model = lora_model(tmp_path)
    ids = batch()
    no_checkpoint = saved_bytes_in_layers(model, ids)

    plain = apply_offloaded_checkpointing(model, offload=False)
    plain_saved = saved_bytes_in_layers(model, ids)
    plain_stats = plain.stats()
    plain.remove()

    offload = apply_offloaded_checkpointing(model, offload=True)
    offload_saved = saved_bytes_in_layers(model, ids)
    stats = offload.stats()
    offload.remove()

    # Autograd's own view: without checkpointing every layer's internals are saved; with plain
    # checkpointing exactly one input per layer; with offloading nothing stays with autograd on the device.
    assert no_checkpoint > 5 * LAYERS * LAYER_BYTES
    assert plain_saved == LAYERS * LAYER_BYTES
    assert offload_saved <= LAYER_BYTES
    # The wrapper's counters agree, and every input was offloaded then given back after backward.
    assert plain_stats["device_saved_bytes_peak"] == LAYERS * LAYER_BYTES
    assert plain_stats["offloaded_peak"] == 0
    assert stats["device_saved_bytes_peak"] <= LAYER_BYTES
    assert stats["offloaded_peak"] == LAYERS * LAYER_BYTES
    assert stats["offloaded"] == 0 and stats["device_saved"] == 0
    # Backward found every input but the last layer's already on its way back (prefetched by the layer after).
    assert stats["prefetch_hits"] == LAYERS - 1 and plain_stats["prefetch_hits"] == 0


def test_offloaded_bytes_are_held_between_forward_and_backward(tmp_path):
    model = lora_model(tmp_path)
    handle = apply_offloaded_checkpointing(model)
    loss = model(input_ids=batch(), labels=batch(), use_cache=False).loss
    assert handle.stats()["offloaded"] == LAYERS * LAYER_BYTES
    loss.backward()
    assert handle.stats()["offloaded"] == 0
    # A graph dropped without backward gives its buffers back too.
    loss = model(input_ids=batch(), labels=batch(), use_cache=False).loss
    del loss
    assert handle.stats()["offloaded"] == 0
    handle.remove()


def test_pinned_buffers_are_reused_between_steps(tmp_path):
    model = lora_model(tmp_path)
    handle = apply_offloaded_checkpointing(model)
    train_step(model, batch(0))
    warm = handle.stats()
    assert warm["pinned_allocations"] == LAYERS
    train_step(model, batch(1))
    train_step(model, batch(2, t=T - 1))  # a shorter micro-batch fits the same buffers
    assert handle.stats()["pinned_allocations"] == warm["pinned_allocations"]
    assert handle.stats()["pinned_bytes"] == warm["pinned_bytes"]
    train_step(model, batch(3, t=4 * T))  # a longer one replaces them instead of piling up
    assert handle.stats()["pinned_allocations"] == 2 * LAYERS
    assert handle.stats()["pinned_bytes"] < 5 * LAYERS * LAYER_BYTES
    handle.remove()


def test_pinned_cap_falls_back_to_device_and_warns_once(tmp_path):
    model = lora_model(tmp_path)
    ids = batch()
    _, reference = train_step(model, ids)
    warnings = []
    handle = apply_offloaded_checkpointing(model, max_pinned_bytes=LAYER_BYTES * 3 // 2,
                                           on_warning=warnings.append)
    _, grads = train_step(model, ids)
    train_step(model, ids)
    stats = handle.stats()
    handle.remove()
    assert len(warnings) == 1 and "GiB" in warnings[0] and "cpu" in warnings[0]
    assert stats["offloaded_peak"] == LAYER_BYTES
    assert stats["device_saved_bytes_peak"] == (LAYERS - 1) * LAYER_BYTES
    assert stats["pinned_bytes"] <= LAYER_BYTES * 3 // 2
    assert_close(grads, reference)


def test_free_ram_budget_keeps_the_safety_margin(tmp_path, monkeypatch):
    model = lora_model(tmp_path)
    monkeypatch.setattr(pinned_pool, "available_ram_bytes", lambda: pinned_pool.ram_safety_margin() + 100)
    warnings = []
    handle = apply_offloaded_checkpointing(model, on_warning=warnings.append)
    train_step(model, batch())
    stats = handle.stats()
    handle.remove()
    assert stats["offloaded_peak"] == 0 and stats["device_saved_bytes_peak"] == LAYERS * LAYER_BYTES
    assert len(warnings) == 1 and "free RAM" in warnings[0]


def test_remove_restores_forwards_and_transformers_flag(tmp_path):
    model = lora_model(tmp_path)
    model.gradient_checkpointing_enable()  # would nest inside ours; the handle switches it off meanwhile
    layers = find_decoder_layers(model)[0]
    ids = batch()
    _, reference = train_step(model, ids)
    handle = apply_offloaded_checkpointing(model)
    assert all("forward" in layer.__dict__ and not layer.gradient_checkpointing for layer in layers)
    _, grads = train_step(model, ids)
    handle.remove()
    assert all("forward" not in layer.__dict__ and layer.gradient_checkpointing for layer in layers)
    assert_close(grads, reference)
    before = handle.stats()
    train_step(model, ids)
    assert handle.stats() == before  # the wrapper no longer runs


def test_no_grad_and_generation_pass_through(tmp_path):
    model = lora_model(tmp_path, dropout=0.0).eval()
    ids = batch()
    expected = model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    handle = apply_offloaded_checkpointing(model)
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(out, expected)
    assert handle.stats()["offloaded_peak"] == 0 and handle.stats()["device_saved_bytes_peak"] == 0
    handle.remove()


class ToyDecoderLayer(nn.Module):
    """A layer with a tuple output, dropout and a keyword tensor that requires grad."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.dropout = nn.Dropout(0.5)

    def forward(self, hidden_states, scale=None, extras=None, flag=True):
        out = self.dropout(torch.tanh(self.linear(hidden_states))) * scale[0] + extras["shift"]
        return out, {"flag": flag}, out.mean()


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(ToyDecoderLayer() for _ in range(3))

    def forward(self, x, scale, shift):
        aux = 0
        for layer in self.layers:
            x, info, mean = layer(x, scale=(scale,), extras={"shift": shift}, flag=True)
            assert info == {"flag": True}
            aux = aux + mean
        return x.square().sum() + aux


def test_tuple_outputs_and_keyword_tensors_that_require_grad():
    def run(wrap: bool):
        torch.manual_seed(0)
        model = ToyModel()
        x = torch.randn(4, 8, requires_grad=True)
        scale = torch.tensor(1.5, requires_grad=True)
        shift_leaf = torch.randn(8, requires_grad=True)
        handle = apply_offloaded_checkpointing(model) if wrap else None
        torch.manual_seed(7)
        model(x, scale, shift_leaf * 2).backward()  # shift is not a leaf: its grad must flow upstream
        if handle:
            assert handle.stats()["offloaded_peak"] == 3 * 4 * 8 * 4
        grads = {n: p.grad for n, p in model.named_parameters()}
        return {**grads, "x": x.grad, "scale": scale.grad, "shift": shift_leaf.grad}

    assert_close(run(True), run(False))


def test_clear_errors_for_no_layers_and_applying_twice():
    with pytest.raises(ValueError, match="no decoder layers"):
        apply_offloaded_checkpointing(nn.Sequential(nn.Linear(2, 2)))
    model = ToyModel()
    handle = apply_offloaded_checkpointing(model)
    with pytest.raises(ValueError, match="already applied"):
        apply_offloaded_checkpointing(model)
    handle.remove()
    apply_offloaded_checkpointing(model).remove()


def test_grpo_micro_batch_through_the_fused_loss(tmp_path):
    """A GRPO micro-batch as the engine runs it: last hidden states into grpo_loss, then backward."""
    from grpo_studio.kernels.loss.functional import grpo_loss

    model = lora_model(tmp_path)
    ids = batch(t=12)
    mask = torch.ones(B, 6)
    mask[1, 4:] = 0
    advantages = torch.tensor([0.7, -0.7])

    def step():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(5)
        hidden = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states[-1]
        out = grpo_loss(hidden[:, 5:11], model.get_output_embeddings().weight, ids[:, 6:], mask, advantages)
        out.loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    reference = step()
    handle = apply_offloaded_checkpointing(model)
    grads = step()
    handle.remove()
    assert_close(grads, reference)


def test_activations_split_over_chunks_round_trip(tmp_path, monkeypatch):
    """Large activations span several fixed-size chunks (the last one partly used); a smaller chunk size
    makes the tiny model's layer inputs do the same."""
    monkeypatch.setattr(pinned_pool, "CHUNK_BYTES", 512)
    model = lora_model(tmp_path)
    ids = batch()
    _, reference = train_step(model, ids)
    handle = apply_offloaded_checkpointing(model)
    _, grads = train_step(model, ids)
    chunks_per_layer = -(-LAYER_BYTES // 512)
    assert handle.stats()["pinned_allocations"] == LAYERS * chunks_per_layer
    train_step(model, batch(1, t=T - 2))  # fewer chunks per layer: all reused
    assert handle.stats()["pinned_allocations"] == LAYERS * chunks_per_layer
    handle.remove()
    assert_close(grads, reference)


def test_unsupported_backward_uses_fail_clearly():
    model = ToyModel()
    handle = apply_offloaded_checkpointing(model)
    x, scale, shift = torch.randn(4, 8, requires_grad=True), torch.tensor(1.0), torch.zeros(8)
    with pytest.raises(RuntimeError, match="loss.backward"):
        torch.autograd.grad(model(x, scale, shift), [x])
    loss = model(x, scale, shift)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward twice"):
        loss.backward()
    handle.remove()
