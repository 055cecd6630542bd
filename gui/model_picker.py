"""Choose the base model: the built-in demo, models already in the Hugging Face cache (scanned in the
background with their size and architecture), a local folder, or a hub id typed in — with a Download
button (gui.download_panel) for a hub id that is not in the cache yet."""
from __future__ import annotations

import json
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from grpo_studio.engine.common.config import DEMO
from grpo_studio.engine.common.real_starter import LABEL as REAL_LABEL
from grpo_studio.engine.common.real_starter import is_starter_model, real_model_gguf
from grpo_studio.engine.common.sources import hub_cache_dir
from grpo_studio.gui.download_panel import DownloadPanel
from grpo_studio.gui.widgets import FieldError, fmt_bytes, label

DEMO_TEXT = "Built-in demo: a 130k-parameter model that learns to add digits, on the CPU in a minute or two"
REAL_TEXT = ("Real model on your CPU: SmolLM2-135M-Instruct (a 98 MB GGUF, downloaded from PyPI by the first run) "
             "learns arithmetic, judged on 64 held-out questions before and after training")
FIXED_ITEMS = 2  # the demo and the real-model starter, above the models found in the cache


def scan_hf_cache(cache_dir: str | None = None) -> list[dict]:
    """Model repos in the HF cache: [{repo_id, size, model_type, path}], largest first. Never downloads."""
    try:
        from huggingface_hub import scan_cache_dir
        # the cache the engine downloads into, read now (scan_cache_dir's own default is frozen at its import)
        info = scan_cache_dir(cache_dir or hub_cache_dir())
    except Exception:  # noqa: BLE001 - no cache yet, or an unreadable one: nothing to offer
        return []
    found = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        model_type, snapshot = None, None
        for revision in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            config = Path(revision.snapshot_path) / "config.json"
            if config.is_file():
                snapshot = revision.snapshot_path
                try:
                    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
                except (OSError, ValueError):
                    model_type = None
                break
        if snapshot is None:
            continue  # only tokenizers or GGUF files: not something we can train
        found.append({"repo_id": repo.repo_id, "size": repo.size_on_disk, "model_type": model_type or "?",
                      "path": str(snapshot)})
    return sorted(found, key=lambda m: m["repo_id"].lower())


class _ScanSignals(QObject):
    done = Signal(list)


class ModelPicker(QWidget):
    changed_event = Signal()
    status_event = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cached: list[dict] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        row = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        line = self.combo.lineEdit()
        assert line is not None  # an editable combo box has one
        line.setPlaceholderText("demo, a hub id such as Qwen/Qwen2.5-1.5B-Instruct, or a folder")
        self.combo.setToolTip("The model to fine-tune: a model in your Hugging Face cache, a hub id, a local "
                              "folder saved by transformers, or 'demo'")
        self.combo.setAccessibleName("model")
        self.combo.addItem(DEMO)
        self.combo.setItemData(0, DEMO_TEXT, Qt.ItemDataRole.ToolTipRole)
        self.combo.addItem(REAL_LABEL)  # stands for the starter's GGUF path (value() / set_value())
        self.combo.setItemData(1, REAL_TEXT, Qt.ItemDataRole.ToolTipRole)
        self.combo.currentTextChanged.connect(lambda _: self.changed_event.emit())
        self.browse = QPushButton("Folder…")
        self.browse.setToolTip("Pick a local model folder (with config.json and safetensors)")
        self.browse.clicked.connect(self.browse_action)
        row.addWidget(self.combo, 1)
        row.addWidget(self.browse)
        layout.addLayout(row)
        self.info = label("", "Muted", wrap=True)
        self.error = FieldError()
        self.download = DownloadPanel()
        self.download.downloaded_event.connect(self._downloaded)
        self.combo.currentTextChanged.connect(self.download.set_target)
        layout.addWidget(self.info)
        layout.addWidget(self.download)
        layout.addWidget(self.error)
        self.cache_dir: str | None = None
        self._signals = _ScanSignals(self)
        self._signals.done.connect(self._scan_done)

    def value(self) -> str:
        text = self.combo.currentText().strip()
        return str(real_model_gguf()) if text == REAL_LABEL else text

    def set_value(self, model: str) -> None:
        self.combo.blockSignals(True)
        self.combo.setCurrentText(REAL_LABEL if model and is_starter_model(model) else model)
        self.combo.blockSignals(False)
        self.download.set_target(model)

    def scan(self, cache_dir: str | None = None) -> None:
        """Scan the HF cache in a thread (it walks the disk); the list fills in when done."""
        self.cache_dir = cache_dir
        threading.Thread(target=lambda: self._signals.done.emit(scan_hf_cache(cache_dir)), daemon=True).start()

    def _scan_done(self, models: list) -> None:
        self.cached = models
        current = self.value()
        self.combo.blockSignals(True)
        while self.combo.count() > FIXED_ITEMS:
            self.combo.removeItem(FIXED_ITEMS)
        for model in models:
            self.combo.addItem(model["repo_id"])
            self.combo.setItemData(self.combo.count() - 1, f"{model['model_type']} · {fmt_bytes(model['size'])} "
                                   f"in the Hugging Face cache", Qt.ItemDataRole.ToolTipRole)
        self.combo.setCurrentText(current)
        self.combo.blockSignals(False)
        self.status_event.emit(f"Found {len(models)} model{'s' if len(models) != 1 else ''} in the Hugging "
                               "Face cache" if models else "No models in the Hugging Face cache yet")
        self.changed_event.emit()

    def _downloaded(self, repo_id: str, folder: str) -> None:
        self.status_event.emit(f"Downloaded {repo_id}")
        self.scan(self.cache_dir)  # it is in the cache now: list it, and the page looks it up again

    def browse_action(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        if folder:
            self.combo.setCurrentText(folder)

    def describe(self, model_config: dict | None) -> None:
        """The line under the picker: what was found and how big it is."""
        model = self.value()
        if model == DEMO:
            self.info.setText(DEMO_TEXT)
            return
        if is_starter_model(model):
            self.info.setText(REAL_TEXT)
            return
        if not model_config:
            self.info.setText("")
            return
        cached = next((m for m in self.cached if m["repo_id"] == model), None)
        params = model_config.get("params")
        parts = [str(model_config.get("model_type", "?"))]
        if params:
            parts.append(f"{params / 1e9:.2f} B parameters" if params >= 1e8 else f"{params / 1e6:.1f} M parameters")
        parts.append(f"{model_config.get('num_hidden_layers')} layers")
        source = {"local": "local folder", "hf_cache": "in the Hugging Face cache",
                  "table": "not downloaded yet: the engine downloads it when the run starts",
                  "download": "config downloaded"}.get(model_config.get("source", ""), "")
        if cached:
            source = f"{fmt_bytes(cached['size'])} in the Hugging Face cache"
        self.info.setText(" · ".join(parts + ([source] if source else [])))

    def show_error(self, text: str | None) -> None:
        self.error.show_error(text, self.combo)
        if text:
            self.info.setText("")
