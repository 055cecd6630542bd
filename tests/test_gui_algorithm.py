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


def test_learning_signal_shows_the_sampler_mismatch_and_the_entropy_bonus():
    from grpo_studio.engine.common.signal_hints import signal_hints
    from grpo_studio.gui.learning_signal import summary_line

    def step(capped):
        return {"type": "metrics", "reward": 0.5, "signal": {"zero_spread_groups": 0.0, "truncated": 0.0,
                                                            "entropy": 1.2, "sampler_kl": 0.004,
                                                            "sampler_capped": capped, "entropy_coef": 0.01}}

    line = summary_line([step(0.05)])
    assert "sampler mismatch KL 0.004, capped 5%" in line and "entropy bonus 0.010" in line
    assert "sampler_mismatch" not in {h.key for h in signal_hints([step(0.05)] * 5)}
    hint = next(h for h in signal_hints([step(0.4)] * 5) if h.key == "sampler_mismatch")
    assert "40%" in hint.text and "generation_dtype" in hint.text
    plain = {"type": "metrics", "signal": {"entropy": 1.0}}
    assert "sampler" not in summary_line([plain]) and "bonus" not in summary_line([plain])
