"""DESIGN.md's import rules, read from the source: the GUI never imports torch & co.; the engine and the
kernels never import Qt; kernels import nothing of the engine or GUI."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "triton", "peft", "bitsandbytes", "accelerate", "trl", "liger_kernel"}
QT = {"PySide6", "pyqtgraph", "PyQt5", "PyQt6", "superqt", "qtpy"}
RULES = {
    "gui": HEAVY | {"grpo_studio.kernels"},
    "engine": QT | {"grpo_studio.gui"},
    "kernels": QT | {"grpo_studio.engine", "grpo_studio.gui"},
}
# Engine modules the GUI may import: they must stay torch-free themselves.
TORCH_FREE_ENGINE = ["config.py", "estimate.py", "estimate_model.py", "estimate_gpu.py", "model_configs.py",
                     "protocol.py", "runs.py", "errors.py", "events.py"]


def imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def banned_imports(folder: str, banned: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_names(path):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_layers_respect_import_rules():
    broken = [line for folder, banned in RULES.items() for line in banned_imports(folder, banned)]
    assert broken == []


def test_gui_facing_engine_modules_are_torch_free():
    broken = []
    for name in TORCH_FREE_ENGINE:
        path = ROOT / "engine" / name
        if path.exists():
            broken += [f"engine/{name} imports {n}" for n in imported_names(path)
                       if any(n == b or n.startswith(b + ".") for b in HEAVY)]
    assert broken == []


def test_rule_checker_catches_a_violation(tmp_path, monkeypatch):
    bad = tmp_path / "gui"
    bad.mkdir()
    (bad / "bad.py").write_text("import torch\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert banned_imports("gui", RULES["gui"]) == ["gui/bad.py imports torch"]
