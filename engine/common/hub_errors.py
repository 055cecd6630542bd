"""What a Hugging Face Hub failure means for the user: gated or private repos, unknown repos or revisions, a
refused token, a full disk, an unreachable Hub, each as an error with a hint. Shared by the downloads
(engine/hub/download.py) and the GUI's model look-up (model_configs.py), so it lives here, torch-free;
huggingface_hub is imported only when an error is translated.
"""
from __future__ import annotations

import errno

from grpo_studio.engine.common.errors import StudioError
from grpo_studio.engine.common.sources import Source, hub_cache_dir, hub_endpoint

TOKEN_HINT = ("put a Hugging Face access token (read access, from {tokens}) in Settings → Hugging Face token, "
              "or run `hf auth login`, or set HF_TOKEN")


class DownloadError(StudioError):
    """The Hub refused, does not know the repo, or cannot be reached."""

    kind = "download"


class NotEnoughDisk(StudioError):
    """The files to fetch do not fit the free space of the cache's disk (the same kind as a full disk)."""

    kind = "disk_full"


def translate_error(source: Source, error: BaseException) -> StudioError:
    from huggingface_hub import errors as hf

    name, url = source.repo_id, source.page_url
    tokens = f"{hub_endpoint()}/settings/tokens"
    if isinstance(error, hf.GatedRepoError):  # a subclass of RepositoryNotFoundError: test it first
        return DownloadError(f"{name} is gated: its files need an accepted license and a token ({url})",
                             f"open {url}, accept its terms, then " + TOKEN_HINT.format(tokens=tokens))
    if isinstance(error, hf.RepositoryNotFoundError):
        return DownloadError(f"{source.what} {name} was taken for a hub id (there is no local path of that name), "
                             f"and the Hub has no such repository, or it is private ({url})",
                             "check the spelling; for a private repo " + TOKEN_HINT.format(tokens=tokens))
    if isinstance(error, hf.RevisionNotFoundError):
        return DownloadError(f"{name} has no revision {getattr(error, 'revision', '') or ''}".strip(),
                             f"check the branch, tag or commit on {url}")
    if isinstance(error, hf.HfHubHTTPError):
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status in (401, 403):
            return DownloadError(f"the Hub refused access to {name} (HTTP {status})",
                                 "check your token: " + TOKEN_HINT.format(tokens=tokens))
        return DownloadError(f"the Hub answered HTTP {status} for {name}: {str(error).splitlines()[0]}",
                             "try again later")
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return NotEnoughDisk(f"the disk filled up while downloading {name} into {hub_cache_dir()}",
                             "free some space (the files finished so far stay in the cache), then start again")
    if isinstance(error, (hf.OfflineModeIsEnabled, hf.LocalEntryNotFoundError, OSError)) or \
            "Connect" in type(error).__name__ or "Timeout" in type(error).__name__:
        return DownloadError(f"the Hub ({hub_endpoint()}) cannot be reached and the {source.what} {name} is not "
                             f"cached", "check your connection (or HF_ENDPOINT for a mirror), or download it on a "
                                        f"connected machine: `grpo-studio download {name}` and copy "
                                        f"{hub_cache_dir()}")
    return DownloadError(f"downloading {name} failed: {type(error).__name__}: {error}", "try again")
