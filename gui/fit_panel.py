"""The New-run page's "Fit to my GPU": the estimator's auto-fit (engine/common/fit.py) applied to the form,
with what it chose and why shown under the memory preview. On a machine without an NVIDIA GPU it fits the
run to the RAM available now, and says so on the button."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QPushButton, QSizePolicy, QVBoxLayout, QWidget

from grpo_studio.engine.common.config import TrainConfig
from grpo_studio.engine.common.estimate_model import GIB
from grpo_studio.engine.common.fit import LABELS, FitResult, fit_config, memory_target, show
from grpo_studio.gui.widgets import label


def fit_text(result: FitResult) -> str:
    """What auto-fit chose and why, in a few lines for the form."""
    target = f"{result.memory['name']} ({result.memory['free'] / GIB:.1f} GiB free)"
    verdict = "fits" if result.fits else "still does not fit"
    if result.changes:
        chosen = "; ".join(f"{LABELS.get(path, path)} {show(old)} → {show(new)}"
                           for path, (old, new) in result.changes.items())
        head = f"Fitted to {target}: {chosen}. Estimated peak {result.total / GIB:.1f} GiB — {verdict}."
    else:
        head = f"Fitted to {target}: nothing to change, estimated peak {result.total / GIB:.1f} GiB — {verdict}."
    lines = [head] + [f"• {reason[0].upper()}{reason[1:]}." for reason in result.reasons
                      if reason != "the run fits as set"]
    if result.longest_completion is not None:
        lines.append(f"• The longest completion this memory allows: {result.longest_completion:,} tokens "
                     "(at micro-batch and generation batch 1).")
    return "\n".join(lines)


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
        self.note.show()
        if result.changes:
            self.fitted_event.emit({path: new for path, (_old, new) in result.changes.items()})

    def clear(self) -> None:
        self.note.hide()
