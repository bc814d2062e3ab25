"""Weights from the Hugging Face Hub, offline-aware: one clear line instead of a minute of
retries.

Without a network, ``huggingface_hub`` retries each request five times with back-off and
logs every try (24 lines and about a minute for one model) before failing with a message
several lines long. Before a download, ``check_reachable`` looks in the local cache; when the
weights are not there, it asks the hub's host once, with a short timeout (or not at all
under ``HF_HUB_OFFLINE=1``), and fails with one line: what is missing and what to do.
``quiet_hub`` keeps the hub's own retry messages off the terminal while it downloads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from urllib.parse import urlparse

from dedup_cli.errors import ModelLoadError

PROBE_TIMEOUT = 3.0  # seconds to reach the hub's host before calling it unreachable
_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` set as the hub reads it: use cached files only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def is_cached(repo_id: str, filenames: Sequence[str]) -> bool:
    """Whether one of ``filenames`` of ``repo_id`` is in the local hub cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of open_clip and transformers
        return False
    for name in filenames:
        try:
            if isinstance(try_to_load_from_cache(repo_id, name), str):
                return True
        except Exception:  # noqa: BLE001 - a malformed cache is a cache miss
            continue
    return False


def _hub_host() -> tuple[str, int]:
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    return endpoint.hostname or "huggingface.co", port


def reachable() -> str | None:
    """None when the hub's host answers; else why not, in a few words. Behind a proxy the
    host is not asked (only the proxy could say), and the download is left to try."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host, port = _hub_host()
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return None
    except OSError as exc:
        return f"{host} cannot be reached ({exc.strerror or type(exc).__name__})"


def check_reachable(model: str, repo_id: str, filenames: Sequence[str], also: str = "") -> None:
    """Fail at once, in one line, when ``model``'s weights are neither cached nor
    downloadable; do nothing when they are cached or the hub answers. ``also``: one more
    thing the user must know (a gated model's licence)."""
    if is_cached(repo_id, filenames):
        return
    why = "HF_HUB_OFFLINE=1 is set" if hub_offline() else reachable()
    if why is None:
        return
    raise ModelLoadError(
        f"{model} weights are not in the local Hugging Face cache ({repo_id}) and {why}: "
        "pass --weights PATH to a local copy, or run once with network access to cache them "
        f"(HF_HUB_OFFLINE=1 then uses only the cache){also}"
    )


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """The hub's retry and warning messages off the terminal while it downloads: a failure
    still ends in one ModelLoadError line."""
    loggers = [logging.getLogger(name) for name in ("huggingface_hub", "urllib3")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
