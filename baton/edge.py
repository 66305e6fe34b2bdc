"""The bounds Baton applies to what people give it, read from the settings.

One place for the API, the approvals page and the CLI, so a launch or a decision is held to
the same limits whichever way it comes in (``BATON_API__MAX_*``, docs/api.md "Limits").
"""

from __future__ import annotations

from typing import Any

from baton.settings import Settings
from orchestration_defs.language.values import ValueLimits, check_text, check_value

# The decision comment's own bound (the API's schema says the same).
MAX_COMMENT_CHARS = 5000
# An operator action's reason (retry, skip, abort): a comment too.
MAX_REASON_CHARS = MAX_COMMENT_CHARS


def input_limits(settings: Settings) -> ValueLimits:
    """Bounds on launch inputs (and on a decision's changes, which become a step's input)."""
    api = settings.api
    return ValueLimits(
        max_string_chars=api.max_string_chars,
        max_items=api.max_list_items,
        max_depth=api.max_input_depth,
        max_total_bytes=api.max_inputs_bytes,
    )


def check_decision(
    settings: Settings, modifications: dict[str, Any] | None, comment: str | None
) -> None:
    """A decision's changes and comment are valid text within the input limits.

    Raises:
        ValueProblem: naming ``modifications.<field>...`` or ``comment``.
    """
    if modifications:
        check_value(modifications, "modifications", input_limits(settings))
    if comment is not None:
        check_text(comment, "comment", max_chars=MAX_COMMENT_CHARS)


def check_reason(reason: str | None) -> str | None:
    """An operator action's reason is valid text within ``MAX_REASON_CHARS``.

    Raises:
        ValueProblem: naming ``reason``.
    """
    if reason is None:
        return None
    return check_text(reason, "reason", max_chars=MAX_REASON_CHARS)
