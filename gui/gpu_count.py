"""The New-run page's GPU-count selector: shown only on a machine with more than one GPU, it sets the
config's `gpus` (data-parallel ranks through torchrun, one per GPU)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QSpinBox, QWidget

from grpo_studio.engine.common.estimate_gpu import detect_gpu, gpu_count
from grpo_studio.gui.widgets import label


class GpuLookups(QObject):
    """The machine's GPU count and the GPU's memory, looked up on a thread (nvidia-smi takes a moment)."""
    gpu_done = Signal(object)
    count_done = Signal(int)

    def detect(self) -> None:
        self.count_done.emit(gpu_count())
        self.gpu_done.emit(detect_gpu())


class GpuCountBox(QWidget):
    changed_event = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.spin = QSpinBox()
        self.spin.setRange(1, 1)
        self.spin.setToolTip("GPUs of this machine to train on, one rank each (torchrun); "
                             "batch.prompts_per_step must divide by it")
        self.spin.setAccessibleName("GPUs to train on")
        self.of = label("", "Muted")
        row.addWidget(label("Train on"))
        row.addWidget(self.spin)
        row.addWidget(self.of)
        self.spin.valueChanged.connect(lambda _: self.changed_event.emit())
        self.available = 0
        self.hide()

    def set_available(self, count: int) -> None:
        """The detected number of GPUs; the box shows from two up."""
        self.available = count
        self.spin.blockSignals(True)
        self.spin.setRange(1, max(1, count))
        self.spin.blockSignals(False)
        self.of.setText(f"of {count} GPUs")
        self.setVisible(count > 1)

    def load(self, data: dict) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(int(data.get("gpus") or 1))
        self.spin.blockSignals(False)

    def store(self, data: dict) -> None:
        if self.available > 1:  # elsewhere the config's value stays as it was loaded
            data["gpus"] = self.spin.value()
