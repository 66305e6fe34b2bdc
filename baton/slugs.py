"""Which orchestration a user meant: a slug, its Dagster job name, or a near miss.

People copy names from the Dagster UI, where ``content-review`` is the job ``content_review``
and an older version the job ``content_review__v1``; the CLI and the API accept those and
answer a typo with the closest slugs instead of a bare "not found".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# A pinned job name ends in ``__v<N>`` (``models.pinned_job_name``).
_PINNED = re.compile(r"__v\d+$")
_MAX_SUGGESTIONS = 3
# difflib's default cutoff.
_CUTOFF = 0.6
# A suggestion this much below the best one's ratio is left out.
_SPREAD = 0.1


class UnknownSlug(LookupError):
    """No orchestration of that name; ``message`` names the closest ones."""

    def __init__(self, message: str, *, given: str, suggestions: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.given = given
        self.suggestions = suggestions


def resolve_slug(given: str, known: Iterable[str]) -> str:
    """The slug in ``known`` that ``given`` names, or ``UnknownSlug`` with suggestions.

    An exact slug wins; otherwise ``given`` is read as a job name: case folded, ``_`` as ``-``
    and a pinned ``__vN`` suffix dropped (the slug is what runs; its version is chosen by the
    library, not by this name).
    """
    slugs = sorted(set(known))
    if given in slugs:
        return given
    by_key = {_key(slug): slug for slug in slugs}
    wanted = _key(_PINNED.sub("", given.strip()))
    if wanted in by_key:
        return by_key[wanted]
    suggestions = _closest(wanted, by_key)
    raise UnknownSlug(_message(given, suggestions), given=given, suggestions=suggestions)


def _key(name: str) -> str:
    # Two slugs with one job name are refused by the library, so this key is unique per slug.
    return name.lower().replace("_", "-")


def _closest(wanted: str, by_key: dict[str, str]) -> list[str]:
    """The best matches: close by difflib or starting with ``wanted``, near the best one.

    Only matches nearly as good as the best are offered, so a plain typo gets one answer.
    """
    scored = sorted(
        ((difflib.SequenceMatcher(None, wanted, key).ratio(), key) for key in by_key),
        reverse=True,
    )
    close = [(r, key) for r, key in scored if r >= _CUTOFF or (wanted and key.startswith(wanted))]
    if not close:
        return []
    best = close[0][0]
    return [by_key[key] for r, key in close[:_MAX_SUGGESTIONS] if best - r <= _SPREAD]


def _message(given: str, suggestions: list[str]) -> str:
    text = f"no orchestration '{given}' in the library"
    if not suggestions:
        return text
    quoted = [f"'{slug}'" for slug in suggestions]
    options = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"{text}; did you mean {options}?"
