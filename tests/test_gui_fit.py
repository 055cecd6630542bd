"""The New-run page's "Fit to my GPU": one click puts auto-fit's micro-batch and generation batch into the form,
says what it chose and why under the memory preview, and the estimate then fits; without a GPU it fits the RAM."""
import pytest

pytest.importorskip("pytestqt")

from test_gui_new_run import new_run_page  # noqa: E402

RTX_4090 = {"name": "NVIDIA GeForce RTX 4090", "total": 24564 << 20, "free": 24000 << 20}


@pytest.fixture
def page_4090(qtbot, tmp_path, monkeypatch, runs_dir):
    return new_run_page(qtbot, tmp_path, monkeypatch, "NVIDIA GeForce RTX 4090, 24564, 24000", RTX_4090)


def show_seed_row(page, qtbot):
    """Llama-3.1-8B in 4 bits, 1 prompt x 8 generations of 20,480 tokens (the seed's row)."""
    page.apply_changes({"model": "meta-llama/Llama-3.1-8B-Instruct", "load_in_4bit": True,
                        "batch.prompts_per_step": 1, "grpo.num_generations": 8,
                        "grpo.max_completion_length": 20480, "batch.micro_batch_size": 8, "dtype": "auto",
                        "grpo.max_prompt_length": 256, "gradient_checkpointing": True,
                        "offload_activations": "auto"})  # the demo's CPU settings out
    qtbot.waitUntil(lambda: page.vram.result is not None
                    and page.vram.result["model"]["name"] == "meta-llama/Llama-3.1-8B-Instruct", timeout=5000)


def test_fit_to_my_gpu_fills_the_form_and_says_why(page_4090, qtbot):
    page = page_4090
    show_seed_row(page, qtbot)
    assert page.vram.result["verdict"] == "too_big" and page.fit.button.isEnabled()
    assert page.fit.button.text() == "Fit to my GPU"
    page.fit.button.click()
    qtbot.waitUntil(lambda: page.vram.result["verdict"] == "fits", timeout=5000)
    assert page.hyper.editors["batch.micro_batch_size"].value() == 1
    assert page.hyper.editors["batch.micro_batch_size"].isVisibleTo(page)  # the advanced group opened to show it
    assert page.hyper.editors["batch.generation_batch_size"].value() == 2
    assert page.config.batch.micro_batch_size == 1 and page.config.batch.generation_batch_size == 2
    assert page.vram.result["plans"]["grpo_studio"]["total"] <= 22 << 30
    note = page.fit.note.text()
    assert page.fit.note.isVisibleTo(page) and "NVIDIA GeForce RTX 4090" in note
    assert "micro-batch size 8 → 1" in note and "KV cache" in note and "Longest completion" in note
    assert "largest that fits" in page.fit.note.toolTip()  # every reason, as estimate --fit prints them
    assert page.is_ready()
    # the note describes the form it fitted: a later edit takes it away
    page.hyper.editors["grpo.num_generations"].widget.setValue(4)
    qtbot.waitUntil(lambda: not page.fit.note.isVisibleTo(page), timeout=3000)


def test_without_a_gpu_it_fits_the_ram(qtbot, tmp_path, monkeypatch, runs_dir):
    page = new_run_page(qtbot, tmp_path, monkeypatch, "none", None)
    assert page.fit.button.text() == "Fit to my RAM" and page.fit.button.isEnabled()
    before = page.collect()
    page.fit.button.click()
    assert "CPU RAM" in page.fit.note.text() and "nothing to change" in page.fit.note.text()
    assert page.collect() == before  # the demo fits: nothing moved
