"""The engine's rooms (sub-packages of engine/, docs/architecture.md) and their one-way import order, read from
the source with every import counted, function-level ones included: a module may import its own room, rooms
below it, `common` and the kernels; `common` imports nothing of the engine outside itself."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# room -> level; a room may import only rooms of a lower level (and itself). The pipeline, top to bottom.
LEVELS = {
    "common": 0,
    "model": 1, "hub": 1, "data": 1, "checkpoints": 1,
    "rollout": 2, "rewards": 2, "export": 2,
    "chat": 3,
    "evaluate": 4,
    "train": 5,
    "distributed": 6,
    "run": 7,
    "commands": 8, "cli": 9,
}


def room_of(module: str) -> str | None:
    """'grpo_studio.engine.train.loop' -> 'train'; None outside the engine's rooms."""
    parts = module.split(".")
    if parts[:2] != ["grpo_studio", "engine"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in LEVELS else None


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, at any depth; `from grpo_studio.engine import x` names x, and a
    relative import is resolved against `package` (the module's own package, e.g. grpo_studio.engine.common)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            if base == "grpo_studio.engine" or not node.module:
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def broken_rules(engine: Path) -> list[str]:
    broken = []
    for path in sorted(engine.rglob("*.py")):
        relative = path.relative_to(engine)
        source_room = "cli" if relative.parts == ("cli.py",) else relative.parts[0] if len(relative.parts) > 1 else None
        if source_room is None:
            continue  # engine/__init__.py
        package = ".".join(("grpo_studio", "engine", *relative.parts[:-1]))
        for line, module in imported_modules(path, package):
            target = room_of(module)
            if target is None or target == source_room:
                continue
            if LEVELS[target] >= LEVELS[source_room]:
                broken.append(f"engine/{relative}:{line} ({source_room}) imports {module} ({target})")
    return broken


def test_every_import_goes_down_the_rooms():
    assert broken_rules(ROOT / "engine") == []


def test_every_engine_module_lives_in_a_room():
    engine = ROOT / "engine"
    loose = sorted(p.name for p in engine.glob("*.py"))
    assert loose == ["__init__.py", "cli.py"]
    rooms = {p.name for p in engine.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert rooms == set(LEVELS) - {"cli"}


def test_the_kernels_are_rooms_too():
    """kernels/loss/ (the fused GRPO loss) and kernels/offload/ (offloaded checkpointing), nothing loose beside them."""
    kernels = ROOT / "kernels"
    assert sorted(p.name for p in kernels.glob("*.py")) == ["__init__.py"]
    assert {p.name for p in kernels.iterdir() if (p / "__init__.py").is_file()} == {"loss", "offload"}


def test_each_room_maps_its_modules():
    """A room's __init__ docstring lists each of its modules (the map a newcomer reads first)."""
    for init in sorted([*(ROOT / "engine").glob("*/__init__.py"), *(ROOT / "kernels").glob("*/__init__.py")]):
        if init.parent.name in ("common", "commands"):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        missing = [p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py" and f"- {p.stem}:" not in doc]
        assert missing == [], f"{init.parent.name}/__init__.py does not map {missing}"


def test_the_checker_catches_an_upward_import_and_one_inside_a_function(tmp_path):
    engine = tmp_path / "engine"
    for room, text in {"model": "def load():\n    from grpo_studio.engine.train import loop\n",
                       "common": "from grpo_studio.engine import hub\nfrom . import config\n"
                                 "def f():\n    from ..rewards import model\n    from .. import run\n",
                       "train": "from grpo_studio.engine.model import policy\nimport grpo_studio.engine.common.x\n"}.items():
        (engine / room).mkdir(parents=True)
        (engine / room / "__init__.py").write_text("")
        (engine / room / "m.py").write_text(text)
    assert broken_rules(engine) == [
        "engine/common/m.py:1 (common) imports grpo_studio.engine.hub (hub)",
        "engine/common/m.py:4 (common) imports grpo_studio.engine.rewards (rewards)",
        "engine/common/m.py:5 (common) imports grpo_studio.engine.run (run)",
        "engine/model/m.py:2 (model) imports grpo_studio.engine.train (train)",
    ]
