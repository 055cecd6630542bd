"""bootstrap.py's stamp: `run` installs the app only, `test` adds the extras, and neither reinstalls what is
already there (`run` after `test` installs nothing, `test` after `run` adds the extras); and `test`'s fetch of
llama.cpp's files."""
import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

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


# llama.cpp's files for the tests: fetched once from the package index (here a local stand-in), checked
# against the pinned sha256, unpacked only when complete; offline the suite goes on without them.
def make_sdist(tmp_path: Path) -> tuple:
    """A small stand-in sdist with the real layout, served by a local index (PEP 691 JSON)."""
    import hashlib
    import io
    import json
    import tarfile

    sdist_name = "llama_cpp_python-9.9.9"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in ((f"{sdist_name}/vendor/llama.cpp/convert_lora_to_gguf.py", b"# converter\n"),
                           (f"{sdist_name}/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf", b"GGUF"),
                           (f"{sdist_name}/llama_cpp/__init__.py", b"# not needed by the tests\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    data = buffer.getvalue()
    served = tmp_path / "served"
    (served / "simple" / "llama-cpp-python").mkdir(parents=True)
    (served / "files").mkdir()
    (served / "files" / f"{sdist_name}.tar.gz").write_bytes(data)
    listing = {"files": [{"filename": f"{sdist_name}.tar.gz", "url": f"../../files/{sdist_name}.tar.gz"}]}
    (served / "simple" / "llama-cpp-python" / "index.html").write_text(json.dumps(listing))
    pinned = bootstrap.Sdist("llama-cpp-python", "9.9.9", hashlib.sha256(data).hexdigest(), len(data))
    return served, pinned


@pytest.fixture
def index(tmp_path):
    """(the index's address, the stand-in sdist pinned by its sha256), served on localhost."""
    served, pinned = make_sdist(tmp_path)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple", pinned
    server.shutdown()
    server.server_close()


def test_llama_cpp_is_fetched_once_and_only_its_folder_is_kept(tmp_path, index, capsys):
    url, pinned = index
    cache = tmp_path / "cache"
    folder = bootstrap.ensure_llama_cpp(cache, url, pinned)
    assert folder == cache / "llama_cpp_python-9.9.9" / "vendor" / "llama.cpp"
    assert (folder / "convert_lora_to_gguf.py").read_text() == "# converter\n"
    assert (folder / "models" / "ggml-vocab-llama-spm.gguf").is_file()
    assert sorted(p.name for p in cache.iterdir()) == ["llama_cpp_python-9.9.9"]  # no archive, no partial
    assert not (cache / "llama_cpp_python-9.9.9" / "llama_cpp").exists()
    assert "fetching llama.cpp's convert scripts" in capsys.readouterr().out
    # Cached: a second call answers without the index (an address nothing listens on).
    assert bootstrap.ensure_llama_cpp(cache, "http://127.0.0.1:9/simple", pinned) == folder
    assert capsys.readouterr().out == ""


def test_a_file_that_does_not_match_its_pinned_sha256_is_not_unpacked(tmp_path, index, capsys):
    url, pinned = index
    cache = tmp_path / "cache"
    tampered = bootstrap.Sdist(pinned.project, pinned.version, "0" * 64, pinned.size)
    assert bootstrap.ensure_llama_cpp(cache, url, tampered) is None
    assert list(cache.iterdir()) == []
    assert "does not match its pinned size and sha256" in capsys.readouterr().out


def test_offline_the_fetch_says_so_in_one_line_and_the_tests_go_on_without_it(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert bootstrap.ensure_llama_cpp(cache, "http://127.0.0.1:9/simple") is None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "could not fetch llama_cpp_python-0.3.36.tar.gz" in lines[1]
    assert list(cache.iterdir()) == []
    env = bootstrap.environment_for_tests(None)
    assert env["QT_QPA_PLATFORM"] == "offscreen" and env.get("LLAMA_CPP_DIR") == os.environ.get("LLAMA_CPP_DIR")


def test_pytest_gets_the_fetched_folder_unless_llama_cpp_dir_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    assert bootstrap.environment_for_tests(tmp_path)["LLAMA_CPP_DIR"] == str(tmp_path)
    monkeypatch.setenv("LLAMA_CPP_DIR", "/elsewhere/llama.cpp")
    assert bootstrap.environment_for_tests(tmp_path)["LLAMA_CPP_DIR"] == "/elsewhere/llama.cpp"
