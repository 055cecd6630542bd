"""Training settings in two groups: the basics everyone sets, and the rest behind "Show advanced settings".
Every editor's tooltip is the config field's own help, which says what it does to memory and learning."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QPushButton, QVBoxLayout, QWidget

from grpo_studio.gui.form_fields import EditorGroup, FieldEditor

# (dotted path, label, editor options); two columns each.
BASIC = [
    ("max_steps", "Training steps", {"help": "Optimizer steps: each one generates and scores a batch, then "
                                               "updates the adapter. 'auto' (below 1) trains for the Epochs set "
                                               "under advanced settings instead."}),
    ("optim.learning_rate", "Learning rate", {"scientific": True}),
    ("grpo.num_generations", "Generations per prompt", {}),
    ("batch.prompts_per_step", "Prompts per step", {}),
    ("grpo.max_prompt_length", "Max prompt tokens", {}),
    ("grpo.max_completion_length", "Max completion tokens", {}),
    ("lora.r", "LoRA rank", {}),
    ("load_in_4bit", "4-bit base weights", {}),
    ("grpo.temperature", "Temperature", {"decimals": 2}),
    ("grpo.beta", "KL penalty (beta)", {"decimals": 3, "step": 0.01}),
]
ADVANCED = [
    ("num_train_epochs", "Epochs", {"decimals": 2, "step": 0.5,
                                    "help": "Passes over the dataset; used only when Training steps is 'auto'."}),
    ("batch.micro_batch_size", "Micro-batch size", {}),
    ("batch.generation_batch_size", "Generation batch", {}),
    ("fit", "Auto-fit to memory", {}),
    ("fit_may_reduce", "Auto-fit may shorten", {}),
    ("optim.optimizer", "Optimizer", {}),
    ("offload_activations", "Offload activations", {}),
    ("gradient_checkpointing", "Gradient checkpointing", {}),
    ("dtype", "Compute dtype", {}),
    ("lora.alpha", "LoRA alpha", {"decimals": 1, "step": 1.0}),
    ("lora.dropout", "LoRA dropout", {"decimals": 2, "step": 0.05}),
    ("grpo.scale_rewards", "Scale rewards", {}),
    ("grpo.epsilon_low", "Clip epsilon (low)", {"decimals": 2, "step": 0.05}),
    ("grpo.epsilon_high", "Clip epsilon (high)", {"decimals": 2, "step": 0.05}),
    ("grpo.num_iterations", "Passes per batch", {}),
    ("grpo.importance_sampling_level", "Ratio level (GSPO)", {}),
    ("grpo.mask_truncated_completions", "Mask cut-off completions", {}),
    ("grpo.multi_objective_aggregation", "Combine rewards", {}),
    ("grpo.dynamic_sampling", "Dynamic sampling", {}),
    ("grpo.max_resample_times", "Max resample rounds", {}),
    ("grpo.top_p", "Top-p", {"decimals": 2, "step": 0.05}),
    ("optim.lr_scheduler_type", "LR schedule", {}),
    ("optim.warmup_steps", "Warmup steps", {}),
    ("optim.weight_decay", "Weight decay", {"decimals": 3, "step": 0.01}),
    ("optim.max_grad_norm", "Max grad norm", {"decimals": 2}),
    ("checkpoint_every", "Checkpoint every", {}),
    ("log_samples_every", "Sample every", {}),
    ("seed", "Seed", {}),
    ("device", "Device", {}),
]


class HyperparamsPanel(QWidget, EditorGroup):
    changed_event = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editors: dict[str, FieldEditor] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._grid(BASIC))
        self.advanced_button = QPushButton("Show advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.toggled.connect(self._toggle_advanced)
        layout.addWidget(self.advanced_button)
        self.advanced = self._grid(ADVANCED)
        self.advanced.hide()
        layout.addWidget(self.advanced)
        self.editors["max_steps"].changed_event.connect(self._epochs_matter)

    def _grid(self, fields: list) -> QWidget:
        box = QWidget()
        half = (len(fields) + 1) // 2
        self.add_editor_columns(QGridLayout(box), [fields[:half], fields[half:]])
        return box

    def _toggle_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_button.setText("Hide advanced settings" if shown else "Show advanced settings")

    def load(self, data: dict) -> None:
        self.load_editors(data)
        self._epochs_matter()

    def _epochs_matter(self) -> None:
        """Epochs count only while the step count is automatic."""
        self.editors["num_train_epochs"].setEnabled(self.editors["max_steps"].value() is None)

    def reveal_error(self, path: str, editor: FieldEditor) -> None:
        if editor.parent() is not None and self.advanced.isAncestorOf(editor):  # an advanced one opens the group
            self.advanced_button.setChecked(True)

    def reveal(self, paths: list[str]) -> QWidget | None:
        """Open the advanced group when one of `paths` is in it (a fitted micro-batch must be seen); returns the
        first of their editors, for the page to scroll to."""
        editors = [self.editors[p] for p in paths if p in self.editors]
        if any(self.advanced.isAncestorOf(editor) for editor in editors):
            self.advanced_button.setChecked(True)
        return editors[0] if editors else None
