"""Issue 27 findings 1 and 2: an export never deletes or replaces what it did not write, and replaces its own
earlier output only when asked (--force)."""
import os
import stat
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from grpo_studio.engine.common.export_target import MERGED_MARKER, existing_targets  # noqa: E402
from test_chat import cli_json, make_run  # noqa: E402


def test_merged_never_empties_a_folder_with_a_config_json(tmp_path, capsys):
    run = make_run(tmp_path, "llama")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "notes.txt").write_text("n")
    (folder / "config.json").write_text("{}")
    for extra in ([], ["--force"]):
        code, lines = cli_json(capsys, "export", run, "--merged", folder, *extra)
        assert code == 8 and lines[-1]["type"] == "error" and "not written by a GRPO Studio export" in lines[-1]["message"]
        assert (folder / "notes.txt").read_text() == "n" and (folder / "config.json").read_text() == "{}"
    assert not (run / "exports").exists()  # refused before the GGUF was written either


def test_merged_never_writes_over_the_base_model(tmp_path, capsys):
    run = make_run(tmp_path, "llama")
    base = yaml.safe_load((run / "config.yaml").read_text())["model"]
    before = {p.name: p.read_bytes() for p in Path(base).iterdir()}
    code, lines = cli_json(capsys, "export", run, "--merged", base, "--base", base, "--force")
    assert code == 8 and "which the export reads" in lines[-1]["message"]
    assert {p.name: p.read_bytes() for p in Path(base).iterdir()} == before


def test_merged_replaces_its_own_earlier_output_only_with_force(tmp_path, capsys):
    run = make_run(tmp_path, "llama")
    out = tmp_path / "merged"
    assert cli_json(capsys, "export", run, "--merged", out)[0] == 0
    assert (out / MERGED_MARKER).is_file()
    code, lines = cli_json(capsys, "export", run, "--merged", out)
    assert code == 8 and "--force" in lines[-1]["hint"]
    assert cli_json(capsys, "export", run, "--merged", out, "--force")[0] == 0
    (out / "mine.txt").write_text("keep")  # the user's own file beside the merged model
    code, lines = cli_json(capsys, "export", run, "--merged", out, "--force")
    assert code == 8 and "mine.txt" in lines[-1]["message"] and (out / "mine.txt").read_text() == "keep"


def test_gguf_refuses_an_existing_file_unless_forced(tmp_path, capsys):
    run = make_run(tmp_path, "llama")
    out = tmp_path / "a.gguf"
    out.write_text("precious")
    code, lines = cli_json(capsys, "export", run, "--gguf", out)
    assert code == 8 and "already exists" in lines[-1]["message"] and "--force" in lines[-1]["hint"]
    assert out.read_text() == "precious"
    assert existing_targets([out], []) == [out]  # what the Export page asks about
    code, lines = cli_json(capsys, "export", run, "--gguf", out, "--force")
    assert code == 0 and out.read_bytes()[:4] == b"GGUF"


def test_gguf_never_replaces_a_link_or_a_device(tmp_path, capsys):
    run = make_run(tmp_path, "llama")
    target = tmp_path / "target.txt"
    target.write_text("t")
    link = tmp_path / "link.gguf"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    for path in (link, fifo):
        code, lines = cli_json(capsys, "export", run, "--gguf", path, "--force")
        assert code == 8 and lines[-1]["type"] == "error"
    assert link.is_symlink() and target.read_text() == "t"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_ollama_modelfile_is_not_replaced_without_force(tmp_path, capsys):
    run = make_run(tmp_path, "qwen2")
    base_gguf = tmp_path / "base.gguf"
    base_gguf.write_bytes(b"GGUF")
    (run / "exports").mkdir()
    (run / "exports" / "Modelfile").write_text("mine")
    code, lines = cli_json(capsys, "export", run, "--ollama", base_gguf)
    assert code == 8 and "Modelfile" in lines[-1]["message"]
    assert (run / "exports" / "Modelfile").read_text() == "mine"
    assert not (run / "exports" / "adapter-f16.gguf").exists()
