"""DESIGN.md's import rules, read from the source: the GUI never imports torch & co. and reaches only the
torch-free engine/common/; the engine and the kernels never import Qt; kernels import nothing of the engine or
GUI."""
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


def import_time_names(path: Path) -> list[str]:
    """Modules imported when `path` itself is imported: its top-level statements (try/if blocks included),
    not function bodies and not `if TYPE_CHECKING:` blocks."""
    names: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.append(node.module)
                names.extend(f"{node.module}.{alias.name}" for alias in node.names)  # submodules
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def all_imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return imported_names(path) + names


def engine_modules_the_gui_loads(root: Path) -> dict[Path, list[str]]:
    """Every engine module the GUI process loads, with that module's import-time imports: whatever gui/
    imports (at the top or inside a function: both run in the GUI), then what those modules import when
    loaded."""
    def source(name: str) -> Path | None:
        parts = name.split(".")
        if parts[:2] != ["grpo_studio", "engine"]:
            return None
        base = root.joinpath("engine", *parts[2:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    reached: dict[Path, list[str]] = {}
    todo = [name for path in (root / "gui").rglob("*.py") for name in all_imported_names(path)]
    while todo:
        path = source(todo.pop())
        if path is not None and path not in reached:
            reached[path] = import_time_names(path)
            package_init = path.parent / "__init__.py"  # importing a module runs its package's __init__
            todo += [n for n in reached[path]] + ([] if package_init in reached else
                                                  ["grpo_studio.engine" + ("" if path.parent.name == "engine"
                                                                           else "." + path.parent.name)])
    return reached


def heavy_at_import(reached: dict[Path, list[str]], root: Path) -> list[str]:
    return [f"{path.relative_to(root)} imports {name}" for path, names in sorted(reached.items()) for name in names
            if any(name == b or name.startswith(b + ".") for b in HEAVY)]


def test_engine_modules_the_gui_loads_are_torch_free():
    """The list is derived from what gui/ imports, so a new GUI import of an engine module is checked too."""
    reached = engine_modules_the_gui_loads(ROOT)
    names = {path.name for path in reached}
    assert {"config.py", "runs.py", "protocol.py", "estimate.py", "client.py", "launcher.py"} <= names
    assert heavy_at_import(reached, ROOT) == []


def test_the_gui_reaches_only_engine_common():
    """The boundary is the layout: what the GUI uses lives in engine/common/ (torch-free), the training
    process's modules beside it in engine/."""
    common = ROOT / "engine" / "common"
    outside = sorted(str(path.relative_to(ROOT)) for path in engine_modules_the_gui_loads(ROOT)
                     if common not in path.parents and path != ROOT / "engine" / "__init__.py")
    assert outside == []
    everything_common = {path: import_time_names(path) for path in common.glob("*.py")}
    assert len(everything_common) > 10 and heavy_at_import(everything_common, ROOT) == []


def test_derived_list_follows_engine_imports(tmp_path):
    (tmp_path / "gui").mkdir()
    (tmp_path / "engine").mkdir()
    (tmp_path / "gui" / "page.py").write_text("from grpo_studio.engine.config import X\n"
                                              "def later():\n    from grpo_studio.engine import client\n")
    (tmp_path / "engine" / "client.py").write_text("")
    (tmp_path / "engine" / "__init__.py").write_text("")
    (tmp_path / "engine" / "config.py").write_text("def f():\n    import torch\nfrom grpo_studio.engine import util\n")
    (tmp_path / "engine" / "util.py").write_text("try:\n    import torch\nexcept ImportError:\n    pass\n")
    (tmp_path / "engine" / "model.py").write_text("import torch\n")  # not reached from gui/
    reached = engine_modules_the_gui_loads(tmp_path)
    assert sorted(p.name for p in reached) == ["__init__.py", "client.py", "config.py", "util.py"]
    assert heavy_at_import(reached, tmp_path) == ["engine/util.py imports torch"]


def test_rule_checker_catches_a_violation(tmp_path, monkeypatch):
    bad = tmp_path / "gui"
    bad.mkdir()
    (bad / "bad.py").write_text("import torch\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert banned_imports("gui", RULES["gui"]) == ["gui/bad.py imports torch"]
