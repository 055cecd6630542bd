"""The New-run page's Algorithm section: each loss option with its explanation and paper, rows that only a
choice reads shown with that choice, the values going into the config (optional ones as null), and errors
under their fields."""
import pytest

pytest.importorskip("pytestqt")

from test_gui_new_run import page  # noqa: E402,F401 - the page fixture


def test_each_option_has_its_explanation_and_paper(page):
    panel = page.algorithm
    for path in ("grpo.top_entropy_quantile", "grpo.entropy_coef", "grpo.off_policy_mask_threshold",
                 "grpo.vllm_importance_sampling_correction"):
        note = panel._rows[path][2].text()
        assert "arXiv" in note or "Yao et al." in note, path
        assert panel.editors[path].widget.toolTip(), path  # the config field's own help
    panel.editors["grpo.loss_type"].widget.setCurrentText("cispo")
    assert "MiniMax-M1, arXiv 2506.13585" in panel._rows["grpo.loss_type"][2].text()


def test_rows_follow_the_choices(page):
    panel = page.algorithm
    sapo, vespo = panel.editors["grpo.sapo_temperature_pos"], panel.editors["grpo.vespo_k_pos"]
    target = panel.editors["grpo.entropy_target"]
    assert not sapo.isVisibleTo(page) and not vespo.isVisibleTo(page) and not target.isVisibleTo(page)
    panel.editors["grpo.loss_type"].widget.setCurrentText("sapo")
    assert sapo.isVisibleTo(page) and not vespo.isVisibleTo(page)
    panel.editors["grpo.use_adaptive_entropy"].widget.setChecked(True)
    assert target.isVisibleTo(page)
    panel.editors["grpo.vllm_importance_sampling_correction"].widget.setChecked(False)
    assert not panel.editors["grpo.vllm_importance_sampling_mode"].isVisibleTo(page)


def test_values_reach_the_config(page, qtbot):
    panel = page.algorithm
    panel.editors["grpo.loss_type"].widget.setCurrentText("vespo")  # switches the sequence mode to a token one
    panel.editors["grpo.top_entropy_quantile"].widget.setValue(0.2)
    mask = panel.editors["grpo.off_policy_mask_threshold"]
    mask.check.setChecked(True)
    mask.spin.setValue(0.3)
    panel.editors["grpo.vllm_importance_sampling_clip_max"].check.setChecked(False)
    qtbot.waitUntil(page.is_ready, timeout=3000)
    grpo = page.collect()["grpo"]
    assert grpo["loss_type"] == "vespo" and grpo["vllm_importance_sampling_mode"] == "token_mask"
    assert grpo["top_entropy_quantile"] == pytest.approx(0.2) and grpo["off_policy_mask_threshold"] == 0.3
    assert grpo["vllm_importance_sampling_clip_max"] is None
    mask.check.setChecked(False)
    assert page.collect()["grpo"]["off_policy_mask_threshold"] is None


def test_a_cross_field_error_shows_under_its_field(page, qtbot):
    panel = page.algorithm
    panel.editors["grpo.vllm_importance_sampling_mode"].widget.setCurrentText("token_truncate")
    panel.editors["grpo.vllm_importance_sampling_clip_max"].check.setChecked(False)
    qtbot.waitUntil(lambda: not page.is_ready(), timeout=3000)
    error = panel.editors["grpo.vllm_importance_sampling_mode"].error
    assert error.isVisibleTo(page) and "_truncate" in error.text()
    panel.editors["grpo.vllm_importance_sampling_clip_max"].check.setChecked(True)
    qtbot.waitUntil(page.is_ready, timeout=3000)
