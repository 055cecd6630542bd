"""The Hugging Face access token, kept in huggingface_hub's own token storage (HF_HOME/token and
stored_tokens), never in the app's settings, run folders, events or logs. Torch-free.

Every huggingface_hub call in the engine and the CLI reads it from there (HF_TOKEN, when set, wins).
"""
from __future__ import annotations

from grpo_studio.engine.common.errors import ConfigError


def token_stored() -> bool:
    """A token is available (stored, or HF_TOKEN)."""
    from huggingface_hub import get_token

    return get_token() is not None


def save_token(token: str) -> None:
    """Check the token with the Hub (whoami) and store it as the active one; ConfigError when refused."""
    from huggingface_hub import login

    token = token.strip()
    if not token:
        raise ConfigError("the token is empty", "paste a token from the Hub's settings page (Access Tokens)")
    try:
        login(token=token, add_to_git_credential=False)
    except ValueError as error:  # an organisation token
        raise ConfigError(f"this token cannot be used: {error}", "create a personal token with read access") from None
    except Exception as error:  # noqa: BLE001 - 401 for a bad token, or no connection
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            raise ConfigError("the Hub did not accept this token", "check that it was copied whole and is not "
                                                                  "revoked (Hub settings → Access Tokens)") from None
        raise ConfigError(f"the token could not be checked: the Hub cannot be reached ({type(error).__name__})",
                          "check your connection, then save it again") from None


def forget_token() -> None:
    """Remove the stored tokens (HF_TOKEN, if set in the environment, stays in effect)."""
    from huggingface_hub import logout

    try:
        logout()
    except OSError:  # still logged in through HF_TOKEN: nothing more this app can remove
        pass
