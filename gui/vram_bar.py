"""The memory preview under the New run form, saying what is true on this machine:

- a GPU run: GRPO Studio's peak VRAM as stacked components, the naive TRL-style total beside it, the GPU's free
  memory as a line, the verdict in its colour, and the suggestion that would make the run fit (with Apply);
- a CPU run (the demo, or device: cpu): the RAM the engine process will need against this machine's free RAM;
- a real model with no NVIDIA GPU here: which GPU it needs. No bar then: a GPU slice that cannot exist on this
  machine would read as if it did.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from grpo_studio.engine.common.estimate import COMPONENT_LABELS, FIT_FRACTION
from grpo_studio.gui import theme
from grpo_studio.gui.widgets import fmt_bytes, label

GIB = 1 << 30
# What the engine process holds before any model: PyTorch, transformers, peft. Measured as the CPU demo's RSS,
# 603-628 MiB over a whole run (torch 2.13 CPU build; tests/data/demo_events.jsonl), of which the model is < 1 MiB.
ENGINE_RAM = 640 << 20

# The engine's generation and training working sets take turns; the bar stacks the persistent parts and
# the phase that sets the peak.
PHASE_PARTS = {"generation": ("kv_cache", "generation_workspace"),
               "training": ("activations", "recompute", "logits")}
PARTS = [("weights", "Base weights"), ("lora_and_optimizer", "LoRA + optimizer"),
         ("activations", "Activations"), ("recompute", "Recompute"), ("logits", "GRPO loss"),
         ("kv_cache", "KV cache"), ("generation_workspace", "Generation"),
         ("inference_weights", "Inference copy"), ("cuda_overhead", "CUDA context"),
         ("reward_models", "Reward models")]
PART_COLORS = ["#4f46e5", "#0891b2", "#d97706", "#f59e0b", "#db2777", "#16a34a", "#65a30d", "#7c3aed", "#64748b",
               "#be123c"]
VERDICT_TEXT = {"fits": "Fits", "tight": "Tight", "too_big": "Too big"}


def peak_components(plan: dict) -> dict[str, int]:
    """The components that make up the plan's peak (persistent + the peak phase's working set)."""
    components = dict(plan.get("components") or {})
    phase = plan.get("peak_phase")
    if phase in PHASE_PARTS:
        other = next(p for p in PHASE_PARTS if p != phase)
        for key in PHASE_PARTS[other]:
            components.pop(key, None)
    return components


def cpu_parts(plan: dict) -> dict[str, int]:
    """The peak's components that exist in a CPU run (no CUDA context there)."""
    return {k: v for k, v in peak_components(plan).items() if k != "cuda_overhead" and v > 0}


def needed_gpu_gb(total: int) -> int:
    """The smallest card size, in whole GB, on which `total` bytes fit with the estimate's safety margin."""
    return max(1, math.ceil(total / FIT_FRACTION / GIB))


def available_ram() -> dict:
    import psutil  # here, not at start-up: the window shows before any estimate

    memory = psutil.virtual_memory()
    return {"total": memory.total, "available": memory.available}


class BarCanvas(QWidget):
    """Two horizontal bars on one scale, plus the GPU line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(74)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.ours: dict[str, int] = {}
        self.ours_total = 0
        self.naive_total = 0
        self.gpu_free: int | None = None
        self.gpu_total: int | None = None

    def set_data(self, ours: dict[str, int], ours_total: int, naive_total: int, gpu: dict | None) -> None:
        self.ours, self.ours_total, self.naive_total = ours, ours_total, naive_total
        self.gpu_free = gpu.get("free") if gpu else None
        self.gpu_total = gpu.get("total") if gpu else None
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt's name
        c = theme.current()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(8.5)
        p.setFont(font)
        label_w = 96
        left, right = label_w, self.width() - 12
        # The naive plan can be 50x ours: scale to what matters (ours and the GPU) and let naive run off the end.
        scale_max = max(self.ours_total, self.gpu_total or 0, 1) * 1.12
        width = right - left

        def x(value: float) -> float:
            return left + min(value / scale_max, 1.0) * width

        rows = [("GRPO Studio", 8), ("Naive TRL", 42)]
        for text, top in rows:
            p.setPen(QColor(c.text if text == "GRPO Studio" else c.muted))
            p.drawText(QRectF(0, top, label_w - 8, 22), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       text)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(c.surface_alt))
            p.drawRoundedRect(QRectF(left, top, width, 22), 4, 4)
        # ours: stacked components
        start = 0.0
        for (key, _), color in zip(PARTS, PART_COLORS):
            value = self.ours.get(key, 0)
            if value <= 0:
                continue
            p.setBrush(QColor(color))
            p.drawRect(QRectF(x(start), 8, max(x(start + value) - x(start), 1.0), 22))
            start += value
        self._value_text(p, x(self.ours_total), 8, fmt_bytes(self.ours_total), c.text, right)
        # naive: one grey bar, with an arrow when it runs off the scale
        p.setBrush(QColor(c.muted))
        p.setOpacity(0.45)
        p.drawRect(QRectF(left, 42, x(self.naive_total) - left, 22))
        p.setOpacity(1.0)
        off = self.naive_total > scale_max
        self._value_text(p, x(self.naive_total), 42, ("→ " if off else "") + fmt_bytes(self.naive_total), c.muted,
                         right, inside=off)
        if self.gpu_free:
            gx = x(self.gpu_free)
            p.setPen(QPen(QColor(c.bad), 2, Qt.PenStyle.DashLine))
            p.drawLine(int(gx), 2, int(gx), 70)
        p.end()

    def _value_text(self, p: QPainter, at: float, top: int, text: str, color: str, right: float,
                    inside: bool = False) -> None:
        metrics = p.fontMetrics()
        w = metrics.horizontalAdvance(text) + 8
        fits_after = at + w <= right and not inside
        rect = QRectF(at + 6, top, w, 22) if fits_after else QRectF(at - w - 4, top, w, 22)
        p.setPen(QColor(color if fits_after else "#ffffff"))
        p.drawText(rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)


class VramBar(QWidget):
    apply_action = Signal(dict)  # {dotted_field: value}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        top = QHBoxLayout()
        self.verdict = label("", "CardTitle")
        self.detail = label("", "Muted", wrap=True)
        top.addWidget(self.verdict)
        top.addWidget(self.detail, 1)
        layout.addLayout(top)
        self.canvas = BarCanvas()
        layout.addWidget(self.canvas)
        self.legend = label("", "Muted", wrap=True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.legend)
        suggestion_row = QHBoxLayout()
        self.suggestion = label("", wrap=True)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Change the settings as suggested")
        self.apply_button.clicked.connect(self._apply)
        suggestion_row.addWidget(self.suggestion, 1)
        suggestion_row.addWidget(self.apply_button)
        layout.addLayout(suggestion_row)
        self._changes: dict = {}
        self.result: dict | None = None
        self.show_message("Fill in the form to see the memory estimate.")

    def show_message(self, text: str) -> None:
        """No estimate (the config has errors): say why instead of showing stale numbers."""
        self.result = None
        self.verdict.setText("Memory estimate")
        self.verdict.setStyleSheet("")
        self.detail.setText(text)
        self.canvas.set_data({}, 0, 0, None)
        self.canvas.hide()  # empty bars would read as "0 B needed"
        self.legend.setText("")
        self._set_suggestion(None)

    def set_result(self, result: dict, *, runs_on_cpu: bool = False, ram: dict | None = None) -> None:
        """Show an estimate; `runs_on_cpu` for the demo without a GPU or device: cpu, judged against `ram`
        ({total, available} in bytes; this machine's by default)."""
        self.result = result
        if runs_on_cpu:
            self._show_cpu_run(result, ram or available_ram())
        elif result.get("gpu"):
            self._show_gpu_run(result)
        else:
            self._show_needs_gpu(result)

    def _show_verdict(self, text: str, color: str) -> None:
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {color};")
        self.canvas.hide()
        self._set_suggestion(None)

    def _show_cpu_run(self, result: dict, ram: dict) -> None:
        c = theme.current()
        parts = cpu_parts(result["plans"]["grpo_studio"])
        need = ENGINE_RAM + sum(parts.values())
        free = int(ram.get("available") or 0)
        verdict, color = (("Fits in RAM", c.good) if need <= FIT_FRACTION * free else
                          ("Tight", c.warn) if need <= free else ("Too big for the RAM", c.bad))
        self._show_verdict(verdict, color)
        self.detail.setText(f"Trains on the CPU: the engine needs about {fmt_bytes(need)} of RAM, with "
                            f"{fmt_bytes(free)} free of {fmt_bytes(ram.get('total'))}. No GPU is used.")
        self.legend.setText(f"PyTorch and its libraries {fmt_bytes(ENGINE_RAM)} · the model and its training "
                            f"state {fmt_bytes(sum(parts.values()))} ("
                            + ", ".join(f"{COMPONENT_LABELS.get(k, k)} {fmt_bytes(v)}" for k, v in parts.items())
                            + ")")

    def _show_needs_gpu(self, result: dict) -> None:
        c = theme.current()
        ours, naive = result["plans"]["grpo_studio"], result["plans"]["naive"]
        self._show_verdict("Needs an NVIDIA GPU", c.bad)
        self.detail.setText(f"No NVIDIA GPU found on this machine. This run needs one with ≥ "
                            f"{needed_gpu_gb(ours['total'])} GB (estimated peak {fmt_bytes(ours['total'])}; naive "
                            f"TRL-style training: {fmt_bytes(naive['total'])}). Only the demo trains on the CPU.")
        parts = peak_components(ours)
        self.legend.setText("On that GPU: " + ", ".join(f"{text} {fmt_bytes(parts[key])}"
                                                       for key, text in PARTS if parts.get(key)))

    def _show_gpu_run(self, result: dict) -> None:
        c = theme.current()
        ours, naive = result["plans"]["grpo_studio"], result["plans"]["naive"]
        gpu, verdict = result.get("gpu") or {}, result.get("verdict", "no_gpu")
        color = {"fits": c.good, "tight": c.warn, "too_big": c.bad}.get(verdict, c.muted)
        self.verdict.setText(VERDICT_TEXT.get(verdict, verdict))
        self.verdict.setStyleSheet(f"color: {color};")
        self.detail.setText(f"peak {fmt_bytes(ours['total'])} on {gpu.get('name', 'the GPU')} with "
                            f"{fmt_bytes(gpu.get('free'))} free of {fmt_bytes(gpu.get('total'))} (red line) · "
                            f"naive TRL-style training: {fmt_bytes(naive['total'])}")
        parts = peak_components(ours)
        self.canvas.set_data(parts, ours["total"], naive["total"], gpu)
        self.canvas.show()
        items = [f"<span style='color:{color_}'>■</span>&nbsp;"
                 + f"{text} {fmt_bytes(parts[key])}".replace(" ", "&nbsp;")
                 for (key, text), color_ in zip(PARTS, PART_COLORS) if parts.get(key)]  # each item wraps whole
        if ours.get("host_ram"):
            items.append(f"+ {fmt_bytes(ours['host_ram'])} CPU RAM for offloaded activations")
        self.legend.setText(" &nbsp; ".join(items))
        suggestions = result.get("suggestions") or []
        self._set_suggestion(suggestions[0] if suggestions else None)

    def _set_suggestion(self, suggestion: object) -> None:
        if isinstance(suggestion, dict):
            text, self._changes = str(suggestion.get("text", "")), dict(suggestion.get("changes") or {})
        else:
            text, self._changes = (str(suggestion) if suggestion else ""), {}
        self.suggestion.setText(f"<b>To fit:</b> {text}" if text else "")
        self.suggestion.setVisible(bool(text))
        self.apply_button.setVisible(bool(self._changes))

    def _apply(self) -> None:
        if self._changes:
            self.apply_action.emit(dict(self._changes))
