"""bootstrap.py's stamp: `run` installs the app only, `test` adds the extras, and neither reinstalls what is
already there (`run` after `test` installs nothing, `test` after `run` adds the extras)."""
from pathlib import Path

from script_module import load_script

bootstrap = load_script(Path(__file__).resolve().parents[1] / "bootstrap.py")
SETUP = "0123456789abcdef gpu=False"


def test_a_fresh_venv_gets_the_app_for_run_and_the_extras_for_test():
    assert bootstrap.install_plan(None, SETUP, with_extras=False) is False
    assert bootstrap.install_plan(None, SETUP, with_extras=True) is True


def test_run_then_test_adds_the_extras_and_test_then_run_installs_nothing():
    after_run = SETUP + "\n"
    after_test = f"{SETUP} extras={bootstrap.EXTRAS}\n"
    assert bootstrap.install_plan(after_run, SETUP, with_extras=False) is None
    assert bootstrap.install_plan(after_run, SETUP, with_extras=True) is True
    assert bootstrap.install_plan(after_test, SETUP, with_extras=True) is None
    assert bootstrap.install_plan(after_test, SETUP, with_extras=False) is None


def test_a_changed_setup_reinstalls_and_keeps_extras_once_installed():
    changed = "fedcba9876543210 gpu=False"
    assert bootstrap.install_plan(SETUP + "\n", changed, with_extras=False) is False
    assert bootstrap.install_plan(f"{SETUP} extras={bootstrap.EXTRAS}\n", changed, with_extras=False) is True
    assert bootstrap.install_plan(SETUP.replace("False", "True"), SETUP, with_extras=False) is False


def test_the_app_install_has_no_test_or_benchmark_packages():
    import tomllib

    project = tomllib.loads((Path(bootstrap.__file__).parent / "pyproject.toml").read_text())["project"]
    assert set(bootstrap.EXTRAS.split(",")) == set(project["optional-dependencies"])
    app = " ".join(project["dependencies"]).lower()
    assert not any(name in app for name in ("pytest", "trl", "liger"))
