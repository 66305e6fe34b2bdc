"""Announcing a pending approval: an outbound webhook per configured target, never fatal."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from baton.secrets import masker_from_env

log = logging.getLogger(__name__)
NOTIFY_TIMEOUT_SECONDS = 3.0


def notify_pending(targets: list[dict[str, Any]], notice: dict[str, Any]) -> list[str]:
    """POST ``notice`` to each webhook target; returns one status line per target.

    A failing endpoint is logged and skipped: a notification never fails or holds a run for
    longer than the short timeout.
    """
    results = []
    masker = masker_from_env()
    for target in targets:
        url = target["webhook"]
        try:
            response = httpx.post(
                url,
                json=notice,
                headers=target.get("headers") or {},
                timeout=NOTIFY_TIMEOUT_SECONDS,
            )
            results.append(f"{masker.text(url)}: {response.status_code}")
        except httpx.HTTPError as exc:
            results.append(f"{masker.text(url)}: {type(exc).__name__}")
            log.warning("approval notice to %s failed: %s", masker.text(url), exc)
    return results
