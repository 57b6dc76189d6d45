"""Hugging Face Hub ids (`gpt2`, `bert-base-uncased`, `org/name`) to local snapshots, and why a download failed.

The download shows a progress bar per file; in a log (no TTY) a bar redraws at most every LOG_INTERVAL seconds,
so a long download adds a few lines, not thousands. A failure is one line naming the candidate and its real cause
(offline, no network, not found, gated, authentication, revision), not the exception class.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from harness.errors import ModelError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
LOG_INTERVAL = 30.0  # seconds between redraws of a download bar when stderr is not a terminal
LOGIN = "log in with `hf auth login` or set HF_TOKEN"


def looks_like_hub_id(name: str) -> bool:
    return bool(HUB_ID.fullmatch(name)) and not name.startswith((".", "/"))


def progress_class(tty: bool | None = None) -> Any:
    """The tqdm class for download bars. Not huggingface_hub's own: the CLI silences library bars (they would
    bury its own progress), but a download of gigabytes must show, so this class ignores that switch. On a
    terminal it redraws as usual; in a log, at most every LOG_INTERVAL seconds."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]  # tqdm ships no stubs

    interval = 0.1 if (tty if tty is not None else sys.stderr.isatty()) else LOG_INTERVAL

    class DownloadBar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)  # huggingface_hub's bar-group name; tqdm itself rejects it
            kwargs["mininterval"] = max(float(kwargs.get("mininterval") or 0), interval)
            super().__init__(*args, **kwargs)

    return DownloadBar


def download(repo_id: str, revision: str | None) -> Path:
    """The local snapshot folder of a hub model (safetensors and tokenizer files only), fetched when not cached."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=PATTERNS,
                                      tqdm_class=progress_class()))
    except Exception as err:  # huggingface_hub raises many types; hub_failure says which cause each one is
        raise ModelError(f"cannot fetch '{repo_id}' from the Hugging Face Hub: {hub_failure(err, repo_id, revision)}"
                         ) from None


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = err
    while node is not None and node not in seen:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def hub_failure(err: BaseException, repo_id: str, revision: str | None = None) -> str:
    """The cause of a failed hub download, in words, with what to do about it."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = _chain(err)
    if isinstance(err, GatedRepoError):
        return (f"the repository is gated: accept its conditions at https://huggingface.co/{repo_id} while logged in, "
                f"then {LOGIN}")
    if isinstance(err, RepositoryNotFoundError):
        return (f"not found (no such repository, or a private one: {LOGIN}); check the id, or pass a local folder "
                "or a bundled alias")
    if isinstance(err, RevisionNotFoundError):
        return f"revision '{revision}' not found in the repository"
    if isinstance(err, HfHubHTTPError) and err.response is not None and err.response.status_code in (401, 403):
        code = err.response.status_code
        what = "authentication failed" if code == 401 else "access denied"
        return f"{what} (HTTP {code}): the token is missing, invalid or lacks access; {LOGIN}"
    if any(isinstance(e, OfflineModeIsEnabled) for e in chain) or (isinstance(err, LocalEntryNotFoundError)
                                                                      and _offline()):
        return ("offline (HF_HUB_OFFLINE is set) and not in the local Hugging Face cache; download it once while "
                "online, or pass a local folder")
    if isinstance(err, LocalEntryNotFoundError) or any(isinstance(e, (ConnectionError, TimeoutError)) or
                                                       type(e).__name__ in ("ConnectError", "ConnectTimeout")
                                                       for e in chain):
        cause = next((e for e in chain[1:]), err)
        return (f"no network ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else 'unreachable'}) "
                "and not in the local Hugging Face cache; download it while online, or pass a local folder")
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code}: {str(err).strip().splitlines()[0]}"
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else 'no message'}"
