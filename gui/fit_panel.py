"""The New-run page's "Fit to my GPU": the estimator's auto-fit (engine/common/fit.py) applied to the form,
with what it chose and why shown under the memory preview. On a machine without an NVIDIA GPU it fits the
run to the RAM available now, and says so on the button."""
from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QPushButton, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.estimate_model import GIB
from grpo_studio.engine.common.fit import LABELS, FitResult, fit_config, memory_target, show
from grpo_studio.gui.widgets import label

# Why each setting moved, short enough for the form at 1000 x 700 (the full reasons are the note's tooltip).
SHORT_WHY = {
    "gradient_checkpointing": "keeps one input per layer",
    "offload_activations": "moves those to CPU RAM",
    "load_in_4bit": "16-bit weights leave no room",
    "batch.micro_batch_size": "a larger one puts training over the budget; the update is the same",
    "batch.generation_batch_size": "more at once needs too large a KV cache; the completions are the same",
    "grpo.max_completion_length": "the longest that fits, as you allowed",
}


def fit_text(result: FitResult) -> str:
    """What auto-fit chose and why, in two or three lines for the form."""
    target = f"{result.memory['name']} ({result.memory['free'] / GIB:.1f} GiB free)"
    verdict = "fits" if result.fits else "still does not fit"
    chosen = "; ".join(f"{LABELS.get(path, path)} {show(old)} → {show(new)} ({SHORT_WHY.get(path, 'to fit')})"
                       for path, (old, new) in result.changes.items()) or "nothing to change"
    text = f"Fitted to {target}, estimated peak {result.total / GIB:.1f} GiB — {verdict}: {chosen}."
    if not result.fits:
        text += " " + result.reasons[-1][0].upper() + result.reasons[-1][1:] + "."
    if result.longest_completion is not None:
        text += f" Longest completion this memory allows: {result.longest_completion:,} tokens."
    return text


def scroll_to(scroll: QScrollArea, widget: QWidget | None) -> None:
    """Bring a fitted field into view, once the layout has placed a group that just opened."""
    if widget is not None:
        QTimer.singleShot(0, lambda: scroll.ensureWidgetVisible(widget, 0, 80))


class FitPanel(QWidget):
    """The button (for the form's button row) and the note it fills (for under the memory preview)."""

    fitted_event = Signal(dict)  # {dotted field: fitted value}, only when auto-fit changed something

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.button = QPushButton("Fit to my GPU")
        self.button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.button.clicked.connect(self._clicked)
        self.note = label("", "Muted", wrap=True)
        self.note.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        self._inputs: tuple[TrainConfig, dict, dict | None] | None = None
        self.set_inputs(None, None, None)

    def set_inputs(self, config: TrainConfig | None, model_config: dict | None, gpu: dict | None) -> None:
        """What the next click fits: the form's valid config, its model's shape, the detected GPU (or None)."""
        self._inputs = (config, model_config, gpu) if config is not None and model_config is not None else None
        on_gpu = gpu is not None and (config is None or config.device != "cpu")
        self.button.setText("Fit to my GPU" if on_gpu else "Fit to my RAM")
        self.button.setToolTip(
            "Choose the micro-batch, generation batch, offloading and 4-bit so this run fits "
            + ("this GPU's free memory" if on_gpu else "the RAM free now (no NVIDIA GPU here)")
            + " with a margin; new runs also do this when they start (Auto-fit: auto)")
        self.button.setEnabled(self._inputs is not None)

    def _clicked(self) -> None:
        if self._inputs is None:
            return
        config, model_config, gpu = self._inputs
        result = fit_config(config, dict(model_config), memory_target(config, gpu))
        self.note.setText(fit_text(result))
        self.note.setToolTip(result.summary())  # every reason, as `grpo-studio estimate --fit` prints them
        self.note.show()
        if result.changes:
            self.fitted_event.emit({path: new for path, (_old, new) in result.changes.items()})

    def clear(self) -> None:
        self.note.hide()
