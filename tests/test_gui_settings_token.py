"""Settings → Hugging Face token: checked with the Hub, stored by huggingface_hub (never in the app's own
settings), used for gated downloads, and forgotten on request."""
from pathlib import Path

import pytest

from stand_in_hub import stand_in_hub  # noqa: F401 - the fixture

pytest.importorskip("pytestqt")


@pytest.fixture
def dialog(qtbot, tmp_path, monkeypatch, stand_in_hub):
    from grpo_studio.gui.settings import AppSettings
    from grpo_studio.gui.settings_dialog import SettingsDialog

    monkeypatch.setenv("GRPO_STUDIO_SETTINGS", str(tmp_path / "settings.ini"))
    widget = SettingsDialog(AppSettings())
    qtbot.addWidget(widget)
    return widget


def test_token_is_checked_stored_by_huggingface_hub_and_forgotten(dialog, stand_in_hub, tmp_path):
    from huggingface_hub import get_token

    dialog.token.setText("hf_wrong")
    dialog.accept()
    assert dialog.isVisible() or dialog.result() == 0  # refused: the dialog stays
    assert "did not accept" in dialog.token_error.text() and get_token() is None

    stand_in_hub.valid_tokens.add("hf_secret_123")
    dialog.token.setText("hf_secret_123")
    assert dialog.save_token()
    assert get_token() == "hf_secret_123"
    assert (stand_in_hub.home / "token").read_text().strip() == "hf_secret_123"
    dialog.save()
    assert "hf_secret_123" not in Path(tmp_path / "settings.ini").read_text()
    assert "stored" in dialog.token.placeholderText() and dialog.forget_token.isEnabled()

    dialog.forget_token_action()
    assert get_token() is None and not dialog.forget_token.isEnabled()
