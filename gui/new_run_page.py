"""New run: model, dataset, rewards and training settings, checked as the user types (errors under their
fields, Start disabled until there are none), with the live VRAM estimate under the form. Start writes
config.yaml into a new run folder and launches a detached engine; the same YAML can be saved or copied as a
shell command."""
from __future__ import annotations

import copy
import threading
from pathlib import Path

import yaml
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from grpo_studio.engine.common.config import (
    DEMO,
    ConfigError,
    TrainConfig,
    config_from_dict,
    dump_config,
    load_config,
    save_config,
    set_path,
)
from grpo_studio.engine.common.estimate import estimate_run
from grpo_studio.engine.common.launcher import engine_command, start_detached
from grpo_studio.engine.common.real_starter import is_starter_model, real_config
from grpo_studio.engine.common.runs import new_run_dir
from grpo_studio.engine.common.shell_args import quoted
from grpo_studio.gui.algorithm_panel import AlgorithmPanel
from grpo_studio.gui.dataset_picker import DatasetPicker
from grpo_studio.gui.eval_panel import EvalPanel
from grpo_studio.gui.fit_panel import FitPanel, scroll_to
from grpo_studio.gui.gpu_count import GpuCountBox, GpuLookups
from grpo_studio.gui.hyperparams_panel import HyperparamsPanel
from grpo_studio.gui.memory_split import PANEL_STYLE, MemorySplit
from grpo_studio.gui.model_lookup import ModelConfigs
from grpo_studio.gui.model_picker import ModelPicker
from grpo_studio.gui.presets import PRESETS, apply_preset, demo_data, leave_demo
from grpo_studio.gui.rewards_panel import RewardsPanel
from grpo_studio.gui.settings import AppSettings
from grpo_studio.gui.try_rewards_dialog import TryRewardsDialog
from grpo_studio.gui.vram_bar import VramBar
from grpo_studio.gui.widgets import MARGIN, SPACING, Card, FieldError, label, page_header

DEBOUNCE_MS = 150


class NewRunPage(QWidget):
    run_started_event = Signal(str)  # run folder
    status_event = Signal(str)
    gpu_event = Signal(object)  # the detected GPU {name, total, free}, or None: the status bar shows it

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.data: dict = demo_data()
        self.config: TrainConfig | None = None
        self.errors: dict[str, str] = {}
        self.gpu: dict | None = None
        self.model_configs = ModelConfigs(self)
        self.model_configs.answered_event.connect(self._model_answered)
        self._loading = False
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.validate)
        self._lookups = GpuLookups(self)
        self._lookups.gpu_done.connect(self._gpu_done)
        self._build()
        data, restored = self._restored_data()
        self.load_data(data)
        if restored:
            self.restored_note.setText(f"Restored your last settings (model: {data.get('model')}). "
                                       "Preset → Demo (CPU) starts over.")
            self.restored_note.show()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.preset = QComboBox()
        self.preset.addItem("Preset…")
        self.preset.addItems(PRESETS)
        self.preset.setToolTip("Start from the CPU demo or from settings sized for your GPU's memory")
        self.preset.activated.connect(self._preset_chosen)
        open_button = QPushButton("Open YAML…")
        open_button.clicked.connect(self.open_yaml_action)
        header_box = QWidget()
        header_layout = QVBoxLayout(header_box)
        header_layout.setContentsMargins(MARGIN, MARGIN - 4, MARGIN, 8)
        header_layout.addLayout(page_header("New run", "Pick a model and data, choose how answers are rewarded, "
                                            "and check the memory estimate before you start.",
                                            [self.preset, open_button]))
        self.restored_note = label("", "Muted", wrap=True)  # says why the form is not the demo at start
        self.restored_note.hide()
        header_layout.addWidget(self.restored_note)
        outer.addWidget(header_box)

        scroll = self.form_scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        form = QWidget()
        column = QVBoxLayout(form)
        column.setContentsMargins(MARGIN, 4, MARGIN, MARGIN)
        column.setSpacing(SPACING)
        self.model = ModelPicker()
        self.dataset = DatasetPicker()
        self.rewards = RewardsPanel()
        self.hyper = HyperparamsPanel()
        self.algorithm = AlgorithmPanel()
        self.evaluation = EvalPanel()
        for title, subtitle, widget in (
                ("Model", "The base model stays frozen (optionally in 4 bits); GRPO trains a small LoRA adapter "
                          "on top of it.", self.model),
                ("Dataset", "Prompts to practise on, and the reference answers the rewards compare with.",
                 self.dataset),
                ("Rewards", "Each completion is scored by these functions; GRPO pushes the model towards "
                            "completions that score above their group's average.", self.rewards),
                ("Held-out evaluation", "Questions the run never trains on, answered before training and as it "
                                        "learns: how a user would judge the model.", self.evaluation),
                ("Training", "Hover over a setting to see what it does to memory and learning.", self.hyper),
                ("Algorithm", "How the loss turns rewards into updates: the loss type and the options recent "
                              "papers add (TRL's names, so recipes carry over).", self.algorithm)):
            card = Card(title, subtitle)
            card.body.addWidget(widget)
            column.addWidget(card)
        column.addStretch(1)
        scroll.setWidget(form)
        self.vram = VramBar()
        self.vram.apply_action.connect(self.apply_changes)
        self.split = MemorySplit(scroll, self.vram, MARGIN)  # a short window: the form first, the bars a drag away
        outer.addWidget(self.split, 1)

        bottom = QWidget()
        bottom.setObjectName("Card")
        bottom.setStyleSheet(PANEL_STYLE)
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(MARGIN, 8, MARGIN, 12)
        self.fit = FitPanel()  # "Fit to my GPU": its button joins the row below, its note goes here
        self.fit.fitted_event.connect(self.apply_changes)
        self.fit.fitted_event.connect(lambda changes: scroll_to(self.form_scroll, self.hyper.reveal(list(changes))))
        bottom_layout.addWidget(self.fit)
        buttons = QHBoxLayout()
        self.problems = FieldError()
        self.gpus = GpuCountBox()  # only with two GPUs or more
        self.save_button = QPushButton("Save YAML…")
        self.copy_button = QPushButton("Copy as command")
        self.copy_button.setToolTip("Copy a shell snippet that writes this config.yaml and trains it headless")
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("Primary")
        self.start_button.setToolTip("Write config.yaml into a new run folder and start the engine (Ctrl+Return)")
        self.save_button.clicked.connect(self.save_yaml_action)
        self.copy_button.clicked.connect(self.copy_command_action)
        self.start_button.clicked.connect(self.start_action)
        for button in (self.save_button, self.copy_button, self.start_button):
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        buttons.addWidget(self.problems, 3)
        buttons.addWidget(self.gpus)
        buttons.addStretch(1)
        buttons.addWidget(self.fit.button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.start_button)
        bottom_layout.addLayout(buttons)
        outer.addWidget(bottom)
        shortcut = QShortcut(QKeySequence("Ctrl+Return"), self)
        shortcut.activated.connect(self.start_action)

        for part in (self.model, self.dataset, self.rewards, self.hyper, self.algorithm, self.evaluation, self.gpus):
            part.changed_event.connect(self.schedule)
        self._lookups.count_done.connect(self.gpus.set_available)
        self.model.status_event.connect(self.status_event)
        self.rewards.try_action.connect(self.try_rewards_action)

    # ------------------------------------------------------------------ state
    def _restored_data(self) -> tuple[dict, bool]:
        """(the form's first content, whether it is the user's last config rather than the demo)."""
        text = self.settings.value("new_run/last_config")
        demo = demo_data()
        if text:
            try:
                data = config_from_dict(yaml.safe_load(str(text))).to_dict()
            except (ConfigError, yaml.YAMLError):
                return demo, False
            return data, data != demo
        return demo, False

    def load_data(self, data: dict) -> None:
        """Show a config dict in every panel."""
        self._loading = True
        self.data = copy.deepcopy(data)
        self.model.set_value(str(data.get("model", "")))
        self.dataset.load(data["dataset"], data.get("system_prompt"))
        self.rewards.load(data.get("rewards") or [])
        self.hyper.load(data)
        self.gpus.load(data)
        self.algorithm.load(data)
        self.evaluation.load(data)
        self._loading = False
        self.validate()

    def collect(self) -> dict:
        data = copy.deepcopy(self.data)  # fields without editors (target_modules, ...) keep their values
        data["model"] = self.model.value()
        self.dataset.store(data)
        self.rewards.store(data)
        self.hyper.store(data)
        self.gpus.store(data)
        self.algorithm.store(data)
        self.evaluation.store(data)
        return data

    def schedule(self) -> None:
        if not self._loading:
            self.fit.clear()  # the note described the form before this edit
            self._timer.start()

    def detect_gpu_async(self) -> None:
        threading.Thread(target=self._lookups.detect, daemon=True).start()

    def _gpu_done(self, gpu: object) -> None:
        self.gpu = gpu if isinstance(gpu, dict) else None
        self.gpu_event.emit(self.gpu)
        self.validate()

    # ------------------------------------------------------------------ validation + estimate
    def validate(self) -> None:
        self._timer.stop()
        data = self.collect()
        if self._switched_demo(self.data.get("model"), data):
            return
        self.data = data
        errors: dict[str, str] = {}
        try:
            self.config = config_from_dict(data)
        except ConfigError as exc:
            self.config = None
            errors.update(exc.field_messages())
        names = [r.get("name") for r in data["rewards"]]  # a reward model has a model, no name
        errors.update(self.dataset.errors(data, needs_answer="math_correct" in names))
        errors.update(self.rewards.errors(data))
        model_config, model_error, pending = self.model_configs.get(data["model"])
        if model_error:
            errors["model"] = model_error
        self.errors = errors
        self._show_errors(errors)
        self.model.describe(model_config)
        self.fit.set_inputs(self.config, model_config, self.gpu)
        if self.config is not None and model_config is not None:
            try:
                result = estimate_run(self.config, dict(model_config), gpu=self.gpu)
            except (ConfigError, KeyError, ValueError, ZeroDivisionError) as exc:
                self.vram.show_message(f"No estimate: {exc}")
            else:
                cpu_starter = self.config.model == DEMO or is_starter_model(self.config.model)
                self.vram.set_result(result, runs_on_cpu=self.config.device == "cpu" or
                                     (self.gpu is None and cpu_starter))
                self.model.describe(result["model"])  # it carries the parameter count
        elif pending:
            self.vram.show_message("Looking up the model…")
        else:
            self.vram.show_message("Fix the fields marked in red to see the memory estimate.")
        waiting = pending or self.dataset.pending
        self.start_button.setEnabled(not errors and not waiting)
        self.copy_button.setEnabled(self.config is not None)
        self.save_button.setEnabled(self.config is not None)
        if not errors and self.config is not None:
            self.settings.set_value("new_run/last_config", dump_config(self.config))

    def _switched_demo(self, before: object, data: dict) -> bool:
        """The demo's settings go with the demo model: choosing it loads them, leaving it takes them out.
        True when the form was reloaded (which validated it again)."""
        after = data.get("model")
        if before == after or not after:
            return False
        if after == DEMO:
            self.load_data(demo_data())
            self.status_event.emit("Demo settings loaded: the demo's task, rewards and CPU-sized settings")
        elif is_starter_model(str(after)):
            self.load_data(real_config().to_dict())
            self.status_event.emit("Real-model starter loaded: SmolLM2-135M-Instruct, generated arithmetic with "
                                   "64 held-out questions, CPU-sized settings")
        elif before == DEMO:
            data, reset = leave_demo(data)
            if not reset:
                return False
            self.load_data(data)
            self.status_event.emit("Left the demo: its reward file and CPU-sized settings went back to the "
                                   "defaults; its addition task stays until you choose a dataset")
        else:
            return False
        self.restored_note.hide()
        return True

    def _show_errors(self, errors: dict[str, str]) -> None:
        self.model.show_error(errors.get("model"))
        self.dataset.show_errors(errors)
        self.rewards.show_errors(errors)
        shown = {p for panel in (self.hyper, self.algorithm, self.evaluation) for p in panel.show_errors(errors)}
        shown |= {k for k in errors if k == "model" or k.startswith(("dataset.", "rewards", "system_prompt"))}
        other = [f"{k}: {v}" if k else v for k, v in errors.items() if k not in shown]
        count = len(errors)
        summary = (f"{count} problem{'s' if count != 1 else ''} to fix before starting" if count else "")
        if other:
            summary += " — " + "; ".join(other)
        self.problems.show_error(summary or None)

    def _model_answered(self, model: str) -> None:
        if model == self.model.value():
            self.validate()

    def is_ready(self) -> bool:
        return self.start_button.isEnabled()

    # ------------------------------------------------------------------ actions
    def apply_changes(self, changes: dict) -> None:
        """Apply {dotted field: value} (a VRAM suggestion) to the form."""
        data = self.collect()
        for path, value in changes.items():
            set_path(data, path, value)
        self.load_data(data)
        self.status_event.emit("Applied: " + ", ".join(f"{k} = {v}" for k, v in changes.items()))

    def _preset_chosen(self, index: int) -> None:
        if index <= 0:
            return
        name = PRESETS[index - 1]
        self.restored_note.hide()
        self.load_data(apply_preset(name, self.collect()))
        self.preset.setCurrentIndex(0)
        self.status_event.emit(f"Preset: {name}")

    def open_yaml_action(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a config", "", "YAML (*.yaml *.yml)")
        if not path:
            return
        try:
            self.load_data(load_config(path).to_dict())
            self.restored_note.hide()
        except ConfigError as exc:
            self.problems.show_error(f"{Path(path).name}: {exc.message}")
            return
        self.status_event.emit(f"Loaded {path}")

    def save_yaml_action(self) -> None:
        if self.config is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the config", "config.yaml", "YAML (*.yaml *.yml)")
        if path:
            save_config(self.config, path)
            self.status_event.emit(f"Saved {path}")

    def command_text(self) -> str:
        """A shell snippet that recreates this run from a terminal."""
        argv = engine_command(["train", "config.yaml"])
        command = " ".join(quoted(a) for a in argv)
        config = dump_config(self.config) if self.config is not None else ""  # the button needs a valid one
        return f"cat > config.yaml <<'EOF'\n{config}EOF\n{command}\n"

    def copy_command_action(self) -> None:
        if self.config is None:
            return
        QGuiApplication.clipboard().setText(self.command_text())
        self.status_event.emit("Copied: a shell snippet that writes config.yaml and runs grpo-studio train")

    def start_action(self) -> None:
        self.validate()
        if not self.is_ready() or self.config is None:
            self.status_event.emit("Fix the fields marked in red first")
            return
        config = self.config
        run_dir = new_run_dir("demo" if config.model == DEMO else config.model, self.settings.runs_dir)
        config_path = run_dir / "config.yaml"
        save_config(config, config_path)
        try:
            start_detached(["train", str(config_path), "--run-dir", str(run_dir)], run_dir)
        except Exception as exc:  # noqa: BLE001 - the folder stays; say what failed
            self.problems.show_error(f"Could not start the engine: {exc}")
            return
        self.status_event.emit(f"Started {run_dir.name}")
        self.run_started_event.emit(str(run_dir))

    def try_rewards_action(self) -> None:
        if self.config is None:
            self.status_event.emit("Fix the fields marked in red first")
            return
        self.try_dialog = TryRewardsDialog(self)
        self.try_dialog.score(self.config)
        self.try_dialog.open()
