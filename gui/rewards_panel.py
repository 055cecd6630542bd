"""Rewards: the built-in functions with weights, custom `file.py:function` rewards (TRL's signature), reward
models (a sequence-classification model's score, optionally in 4 bits), and the "Try rewards on 5 rows" button
(try_rewards_dialog.py shows what each function returns)."""
from __future__ import annotations

import ast
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.gui.widgets import FieldError, label

BUILTINS = ("math_correct", "format_strict", "format_soft", "xml_count", "length")
FALLBACK_TEXT = {
    "math_correct": "1 when the final answer equals the reference answer (numbers, fractions, LaTeX).",
    "format_strict": "1 for exactly <think>…</think><answer>…</answer>.",
    "format_soft": "1 when <think> and <answer> blocks appear in order.",
    "xml_count": "Partial credit for each tag used once.",
    "length": "Penalises completions near max_completion_length (DAPO's overlong penalty).",
}


def builtin_descriptions() -> dict[str, str]:
    try:  # the engine's own one-line docs; torch-free, but keep the GUI alive if that ever changes
        from grpo_studio.engine.common.reward_functions import BUILTIN_REWARDS
        return {name: text for name, (_, text) in BUILTIN_REWARDS.items()}
    except Exception:  # noqa: BLE001
        return dict(FALLBACK_TEXT)


def custom_reward_problem(spec: str) -> str | None:
    """What is wrong with 'path/file.py:function' (checked without running the file), or None."""
    path_text, _, function = spec.rpartition(":")
    if not path_text or not function:
        return "write it as path/to/file.py:function_name"
    path = Path(path_text).expanduser()
    if not path.is_file():
        return f"file not found: {path}"
    try:
        names = top_level_functions(path)
    except (SyntaxError, UnicodeDecodeError, OSError) as exc:
        return f"cannot read {path.name}: {exc}"
    if function not in names:
        listed = ", ".join(names) or "none"
        return f"{path.name} has no function '{function}' (functions: {listed})"
    return None


def top_level_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and not node.name.startswith("_")]


def _weight_box(value: float = 1.0) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(-100.0, 100.0)
    box.setDecimals(2)
    box.setSingleStep(0.1)
    box.setValue(value)
    box.setToolTip("Weight in the summed reward (TRL's reward_weights)")
    box.setMaximumWidth(90)
    return box


class CustomRow(QWidget):
    def __init__(self, spec: str, weight: float, panel: RewardsPanel) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        row = QHBoxLayout()
        self.spec = QLineEdit(spec)
        self.spec.setToolTip("A Python file and function with TRL's reward signature: "
                             "f(prompts, completions, **columns) -> list[float]")
        self.weight = _weight_box(weight)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: panel.remove_custom(self))
        row.addWidget(self.spec, 1)
        row.addWidget(label("weight"))
        row.addWidget(self.weight)
        row.addWidget(remove)
        layout.addLayout(row)
        self.error = FieldError()
        layout.addWidget(self.error)
        self.spec.textChanged.connect(lambda _: panel.changed_event.emit())
        self.weight.valueChanged.connect(lambda _: panel.changed_event.emit())


class ModelRow(QWidget):
    """A reward model: a sequence-classification model (a cached hub id or a folder) whose first logit for
    prompt + completion is the reward; optionally loaded in 4 bits."""

    def __init__(self, model: str, weight: float, four_bit: bool, panel: RewardsPanel) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        row = QHBoxLayout()
        self.model = QLineEdit(model)
        self.model.setPlaceholderText("reward model: a hub id from the cache (org/name) or a local folder")
        self.model.setToolTip("A sequence-classification model; its first logit for prompt + completion is the "
                              "reward. Download it first (Model → Download) or pick a folder.")
        self.weight = _weight_box(weight)
        self.four_bit = QCheckBox("4-bit")
        self.four_bit.setChecked(four_bit)
        self.four_bit.setToolTip("Load the reward model in 4-bit NF4: a quarter of the memory (needs a CUDA GPU)")
        browse = QPushButton("Folder…")
        browse.clicked.connect(self._browse)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: panel.remove_custom(self))
        row.addWidget(label("model"))
        row.addWidget(self.model, 1)
        row.addWidget(browse)
        row.addWidget(label("weight"))
        row.addWidget(self.weight)
        row.addWidget(self.four_bit)
        row.addWidget(remove)
        layout.addLayout(row)
        self.error = FieldError()
        layout.addWidget(self.error)
        self.model.textChanged.connect(lambda _: panel.changed_event.emit())
        self.weight.valueChanged.connect(lambda _: panel.changed_event.emit())
        self.four_bit.toggled.connect(lambda _: panel.changed_event.emit())

    def spec(self) -> dict:
        return {"model": self.model.text().strip(), "weight": self.weight.value(),
                "load_in_4bit": self.four_bit.isChecked()}

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a reward model folder")
        if folder:
            self.model.setText(folder)


def reward_model_problem(model: str) -> str | None:
    """What is wrong with a reward model's id or folder, as far as can be told without loading it."""
    if not model:
        return "name a cached hub id (org/name) or a model folder, or remove the row"
    looks_local = model.startswith(("/", "~", ".")) or Path(model).expanduser().exists()
    if looks_local and not (Path(model).expanduser() / "config.json").is_file():
        return f"no model folder (with config.json) at {model}"
    return None


class RewardsPanel(QWidget):
    changed_event = Signal()
    try_action = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        grid = QGridLayout()
        grid.setHorizontalSpacing(12)
        grid.setVerticalSpacing(4)
        texts = builtin_descriptions()
        self.checks: dict[str, QCheckBox] = {}
        self.weights: dict[str, QDoubleSpinBox] = {}
        for row, name in enumerate(BUILTINS):
            check = QCheckBox(name)
            check.setToolTip(texts.get(name, ""))
            weight = _weight_box()
            weight.setEnabled(False)
            check.toggled.connect(weight.setEnabled)
            check.toggled.connect(lambda _: self.changed_event.emit())
            weight.valueChanged.connect(lambda _: self.changed_event.emit())
            description = label(texts.get(name, ""), "Muted", wrap=True)
            grid.addWidget(check, row, 0)
            grid.addWidget(weight, row, 1)
            grid.addWidget(description, row, 2)
            self.checks[name], self.weights[name] = check, weight
        grid.setColumnStretch(2, 1)
        layout.addLayout(grid)
        self.custom_box = QVBoxLayout()
        self.custom_box.setSpacing(4)
        layout.addLayout(self.custom_box)
        self.customs: list[CustomRow | ModelRow] = []  # reward files and reward models, in config order
        self.error = FieldError()
        layout.addWidget(self.error)
        buttons = QHBoxLayout()
        add = QPushButton("Add reward file…")
        add.setToolTip("A .py file with a function f(prompts, completions, **columns) -> list[float]")
        add.clicked.connect(self.add_file_action)
        add_model = QPushButton("Add reward model")
        add_model.setToolTip("A sequence-classification model that scores prompt + completion (its first logit)")
        add_model.clicked.connect(lambda: self.add_custom(model=True))
        self.try_button = QPushButton("Try rewards on 5 rows")
        self.try_button.setToolTip("Score 5 dataset rows with every selected function, before training")
        self.try_button.clicked.connect(self.try_action)
        buttons.addWidget(add)
        buttons.addWidget(add_model)
        buttons.addWidget(self.try_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    def load(self, rewards: list[dict]) -> None:
        for check in self.checks.values():
            check.blockSignals(True)
            check.setChecked(False)
        for row in list(self.customs):
            self.remove_custom(row, emit=False)
        for spec in rewards:
            name, weight = spec.get("name", ""), float(spec.get("weight", 1.0))
            if spec.get("model"):
                self.add_custom(spec["model"], weight, emit=False, model=True,
                                four_bit=bool(spec.get("load_in_4bit")))
            elif name in self.checks:
                self.checks[name].setChecked(True)
                self.weights[name].setEnabled(True)
                self.weights[name].blockSignals(True)
                self.weights[name].setValue(weight)
                self.weights[name].blockSignals(False)
            else:
                self.add_custom(name, weight, emit=False)
        for name, check in self.checks.items():
            self.weights[name].setEnabled(check.isChecked())
            check.blockSignals(False)

    def store(self, data: dict) -> None:
        rewards = [{"name": name, "weight": self.weights[name].value()}
                   for name in BUILTINS if self.checks[name].isChecked()]
        rewards += [row.spec() if isinstance(row, ModelRow) else {"name": row.spec.text().strip(),
                                                                   "weight": row.weight.value()}
                    for row in self.customs]
        data["rewards"] = rewards

    def errors(self, data: dict) -> dict[str, str]:
        errors = {}
        for i, spec in enumerate(data["rewards"]):
            if "model" in spec:
                problem = reward_model_problem(spec["model"])
                if problem:
                    errors[f"rewards[{i}].model"] = problem
            elif spec["name"] not in BUILTINS:
                problem = custom_reward_problem(spec["name"])
                if problem:
                    errors[f"rewards[{i}].name"] = problem
        return errors

    def show_errors(self, errors: dict[str, str]) -> None:
        offset = sum(check.isChecked() for check in self.checks.values())
        for i, row in enumerate(self.customs):
            if isinstance(row, ModelRow):
                row.error.show_error(errors.get(f"rewards[{offset + i}].model"), row.model)
            else:
                row.error.show_error(errors.get(f"rewards[{offset + i}].name"), row.spec)
        general = errors.get("rewards") or next((v for k, v in errors.items() if k.startswith("rewards[")
                                                 and int(k[8:k.index("]")]) < offset), None)
        self.error.show_error(general)

    def add_custom(self, spec: str = "", weight: float = 1.0, emit: bool = True, model: bool = False,
                   four_bit: bool = False) -> CustomRow | ModelRow:
        """A custom reward file's row, or with `model` a reward model's (`spec`: its id or folder)."""
        row = ModelRow(spec, weight, four_bit, self) if model else CustomRow(spec, weight, self)
        self.customs.append(row)
        self.custom_box.addWidget(row)
        if emit:
            self.changed_event.emit()
        return row

    def remove_custom(self, row: CustomRow | ModelRow, emit: bool = True) -> None:
        self.customs.remove(row)
        row.setParent(None)
        row.deleteLater()
        if emit:
            self.changed_event.emit()

    def add_file_action(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a reward file", "", "Python files (*.py)")
        if not path:
            return
        try:
            names = top_level_functions(Path(path))
        except (SyntaxError, UnicodeDecodeError, OSError) as exc:
            self.error.show_error(f"cannot read {Path(path).name}: {exc}")
            return
        if not names:
            self.error.show_error(f"{Path(path).name} defines no public function")
            return
        name = names[0]
        if len(names) > 1:
            name, ok = QInputDialog.getItem(self, "Reward function", f"Which function in {Path(path).name}?",
                                            names, 0, False)
            if not ok:
                return
        self.add_custom(f"{path}:{name}")
