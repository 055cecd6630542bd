"""The New-run page's Algorithm section: the loss type and the loss options (TRL's names), each with a
one-line explanation and the paper it comes from. Parameters that only one loss type or one switch reads
are shown only while that choice is made, so the section never offers a knob that would do nothing."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from grpo_studio.engine.common.choices import LOSS_TYPES
from grpo_studio.engine.common.loss_settings import LOSS_TYPE_PAPERS
from grpo_studio.gui.form_fields import EditorGroup, FieldEditor, help_text
from grpo_studio.gui.widgets import FieldError, label

TIS_PAPER = "Yao et al. 2025, \"Your efficient RL framework secretly brings you off-policy RL training\""
_ALL = LOSS_TYPES

# (dotted path, label, editor options, explanation, paper, shown when: loss types or the switch's path)
ROWS: list[tuple[str, str, dict, str, str, Any]] = [
    ("grpo.loss_type", "Loss type", {}, "", "", _ALL),
    ("grpo.sapo_temperature_pos", "SAPO temperature, A > 0", {"decimals": 2, "step": 0.05},
     "Sharper gate for rewarded tokens when higher.", "SAPO, arXiv 2511.20347", ("sapo",)),
    ("grpo.sapo_temperature_neg", "SAPO temperature, A ≤ 0", {"decimals": 2, "step": 0.05},
     "The same for penalised tokens (TRL: 1.05).", "SAPO, arXiv 2511.20347", ("sapo",)),
    ("grpo.vespo_k_pos", "VESPO k, A ≥ 0", {"decimals": 2}, "Down-weights completions whose ratio fell below 1.",
     "VESPO, arXiv 2602.10693", ("vespo",)),
    ("grpo.vespo_lambda_pos", "VESPO λ, A ≥ 0", {"decimals": 2}, "Down-weights completions whose ratio rose "
     "above 1.", "VESPO, arXiv 2602.10693", ("vespo",)),
    ("grpo.vespo_k_neg", "VESPO k, A < 0", {"decimals": 2}, "k for penalised completions.",
     "VESPO, arXiv 2602.10693", ("vespo",)),
    ("grpo.vespo_lambda_neg", "VESPO λ, A < 0", {"decimals": 2}, "λ for penalised completions.",
     "VESPO, arXiv 2602.10693", ("vespo",)),
    ("grpo.top_entropy_quantile", "High-entropy tokens only", {"decimals": 2, "step": 0.05},
     "Train on this top share of tokens by entropy (1 = all; the paper: 0.2).",
     "Beyond the 80/20 rule, arXiv 2506.01939", _ALL),
    ("grpo.entropy_coef", "Entropy bonus", {"decimals": 4, "step": 0.001},
     "Adds coef × mean token entropy to the objective: keeps exploring (0 = off).",
     "Skywork-OR1, arXiv 2505.22312", _ALL),
    ("grpo.use_adaptive_entropy", "Adaptive entropy bonus", {}, "Raises the bonus while entropy is below the "
     "target, lowers it above.", "Skywork-OR1, arXiv 2505.22312", _ALL),
    ("grpo.entropy_target", "Entropy target (nats)", {"decimals": 2}, "Set near the entropy the Monitor shows "
     "early in training.", "", "grpo.use_adaptive_entropy"),
    ("grpo.entropy_coef_delta", "Bonus step", {"decimals": 4, "step": 0.001}, "Change of the bonus per step.", "",
     "grpo.use_adaptive_entropy"),
    ("grpo.entropy_coef_min", "Bonus minimum", {"decimals": 4, "step": 0.001}, "", "", "grpo.use_adaptive_entropy"),
    ("grpo.entropy_coef_max", "Bonus maximum", {"decimals": 4, "step": 0.01}, "", "", "grpo.use_adaptive_entropy"),
    ("grpo.use_bias_correction_kl", "KL × ratio", {}, "Multiplies the KL penalty by the importance ratio: the "
     "unbiased reverse-KL gradient (KL penalty > 0 only).", "DeepSeek-V3.2, arXiv 2512.02556", _ALL),
    ("grpo.off_policy_mask_threshold", "Off-policy mask", {"decimals": 3, "step": 0.01},
     "Drop penalised completions the policy has drifted from by more than this (mean log-ratio).",
     "DeepSeek-V3.2, arXiv 2512.02556", _ALL),
    ("grpo.vllm_importance_sampling_correction", "Sampler correction", {},
     "Reweights tokens by trainer / sampler probability when sampling runs in bf16 (TIS).", TIS_PAPER, _ALL),
    ("grpo.vllm_importance_sampling_mode", "Correction mode", {}, "Per token or per completion; truncate the "
     "ratio, or mask what falls outside the bounds.", "", "grpo.vllm_importance_sampling_correction"),
    ("grpo.vllm_importance_sampling_clip_max", "Ratio upper bound", {"decimals": 2}, "", "",
     "grpo.vllm_importance_sampling_correction"),
    ("grpo.vllm_importance_sampling_clip_min", "Ratio lower bound", {"decimals": 2}, "", "",
     "grpo.vllm_importance_sampling_correction"),
]
OPTIONAL = {"grpo.off_policy_mask_threshold": 0.5, "grpo.vllm_importance_sampling_clip_max": 3.0,
            "grpo.vllm_importance_sampling_clip_min": 0.5}  # optional floats: the value a tick starts from


class OptionalFloatEditor(QWidget):
    """A float that can be off (None): a check box switches the spin box on."""

    changed_event = Signal()

    def __init__(self, path: str, start: float, *, decimals: int = 3, step: float = 0.1) -> None:
        super().__init__()
        self.path, self.start = path, start
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        self.check = QCheckBox("on")
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(decimals)
        self.spin.setRange(0.0, 1e6)
        self.spin.setSingleStep(step)
        self.widget = self.spin  # what tooltips, errors and tests address
        self.spin.setToolTip(help_text(path))
        self.check.setToolTip(help_text(path))
        self.spin.setAccessibleName(path)
        self.check.toggled.connect(self.spin.setEnabled)
        self.check.toggled.connect(lambda _: self.changed_event.emit())
        self.spin.valueChanged.connect(lambda _: self.changed_event.emit())
        row.addWidget(self.check)
        row.addWidget(self.spin, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(row)
        self.error = FieldError()
        layout.addWidget(self.error)

    def value(self) -> float | None:
        return self.spin.value() if self.check.isChecked() else None

    def set_value(self, value: float | None) -> None:
        for widget in (self.check, self.spin):
            widget.blockSignals(True)
        self.check.setChecked(value is not None)
        self.spin.setEnabled(value is not None)
        self.spin.setValue(self.start if value is None else float(value))
        for widget in (self.check, self.spin):
            widget.blockSignals(False)

    def show_error(self, text: str | None) -> None:
        self.error.show_error(text, self.spin)


class AlgorithmPanel(QWidget, EditorGroup):
    changed_event = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editors: dict[str, Any] = {}
        self._rows: dict[str, tuple[QLabel, QWidget, QLabel, Any]] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(6)
        for row, (path, text, options, explanation, paper, shown_when) in enumerate(ROWS):
            editor: FieldEditor | OptionalFloatEditor
            if path in OPTIONAL:
                editor = OptionalFloatEditor(path, OPTIONAL[path], **options)
            else:
                editor = FieldEditor(path, **options)
            editor.changed_event.connect(self._refresh)
            if path == "grpo.loss_type":
                editor.changed_event.connect(self._loss_type_chosen)
            editor.changed_event.connect(self.changed_event)
            name = label(text)
            name.setToolTip(help_text(path))
            name.setBuddy(editor.widget)
            note = label(_note(explanation, paper), "Muted", wrap=True)
            grid.addWidget(name, row, 0)
            grid.addWidget(editor, row, 1)
            grid.addWidget(note, row, 2)
            self.editors[path] = editor
            self._rows[path] = (name, editor, note, shown_when)
        grid.setColumnStretch(1, 2)
        grid.setColumnStretch(2, 5)
        self._refresh()

    def _loss_type_chosen(self) -> None:
        """VESPO takes the sampler correction per token only (TRL's rule): choosing it switches a sequence
        mode to token_mask in the form, where the user sees it, rather than leaving an error behind."""
        mode = self.editors["grpo.vllm_importance_sampling_mode"]
        if self.editors["grpo.loss_type"].value() == "vespo" and mode.value().startswith("sequence"):
            mode.set_value("token_mask")

    def _refresh(self) -> None:
        """Show the rows the current choices read; the loss type's own line says what it does."""
        loss_type = self.editors["grpo.loss_type"].value()
        what, paper = LOSS_TYPE_PAPERS.get(loss_type, ("", ""))
        self._rows["grpo.loss_type"][2].setText(_note(what, paper))
        for name, editor, note, shown_when in self._rows.values():
            if isinstance(shown_when, str):
                visible = bool(self.editors[shown_when].value())
            else:
                visible = loss_type in shown_when
            for widget in (name, editor, note):
                widget.setVisible(visible)

    def load(self, data: dict) -> None:
        self.load_editors(data)
        self._refresh()

    def reveal_error(self, path: str, editor: Any) -> None:
        for widget in self._rows[path][:3]:  # a hidden row's error shows it
            widget.setVisible(True)


def _note(explanation: str, paper: str) -> str:
    return f"{explanation} ({paper})" if explanation and paper else explanation or paper
