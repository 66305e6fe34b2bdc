"""Masking secrets before anything is stored, logged or raised.

Two nets: the values of every environment variable an agent declares as secret (and Baton's
own secret settings), replaced wherever they occur; and patterns of key-like strings (API keys,
bearer tokens, webhook secrets, passwords in URLs), replaced even when their value is unknown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
_MIN_SECRET_LENGTH = 4
_PATTERNS = [
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI-style keys
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google API keys
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"),  # Standard Webhooks secrets
    re.compile(r"\b(?:gh[pousr]|xox[abpr])[_-][A-Za-z0-9_\-]{16,}"),  # GitHub, Slack tokens
    re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/\-]{12,}=*"),
    re.compile(r"(?<=://)([^/:@\s]+):([^@/\s]+)(?=@)"),  # user:password@ in URLs
]


class Masker:
    """Replaces known secret values and key-like strings with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is replaced whole.
        self.values = sorted(values, key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every secret and key-like string masked."""
        for secret in self.values:
            if secret in value:
                value = value.replace(secret, MASK)
        for pattern in _PATTERNS:
            value = pattern.sub(_replacement(pattern), value)
        return value

    def mask(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string masked (keys too)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.mask(k): self.mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask(v) for v in value]
        return value


def _replacement(pattern: re.Pattern[str]) -> str:
    return r"\1:" + MASK if pattern.groups == 2 else MASK


def secret_env_names() -> set[str]:
    """Names of env vars that hold secrets: those agents declare secret, and Baton's own."""
    from agent_resources.catalog import agent_catalog  # the catalog is plain Python

    names = {v.name for entry in agent_catalog().values() for v in entry.env if v.is_secret}
    return names | {
        "BATON_DATABASE_URL",
        "DAGSTER_PG_PASSWORD",
        "BATON_SECRET_KEY",
        "BATON_SECRET_KEY_PREVIOUS",
    }


def masker_from_env(environ: dict[str, str] | None = None) -> Masker:
    """A masker that knows the current values of every secret env var."""
    environ = dict(os.environ) if environ is None else environ
    values = [environ[name] for name in secret_env_names() if environ.get(name)]
    # A list of keys: each one masked alone too, wherever it appears without the others.
    values += [part.strip() for part in environ.get("BATON_SECRET_KEY_PREVIOUS", "").split(",")]
    return Masker(values)
