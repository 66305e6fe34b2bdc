"""The event types a subscription may ask for, as subscribers see them.

Events are read from ``orchestration_events``. Checkpoint events are published under the
``approval.`` prefix, the name API clients know them by; everything else keeps its name.
"""

from __future__ import annotations

from collections.abc import Iterable

STORED_PREFIX = "checkpoint."
PUBLIC_PREFIX = "approval."

PUBLIC_EVENTS = frozenset(
    {
        "run.created",
        "run.segment_started",
        "run.completed",
        "run.failed",
        "run.aborted",
        "step.started",
        "step.completed",
        "step.failed",
        "step.skipped",
        "step.reset",
        "step.cache_hit",
        "deliverable.created",
        "approval.requested",
        "approval.voted",
        "approval.decided",
        "approval.expired",
        "approval.escalated",
        "approval.cancelled",
        # A decided approval's segment started, or could not (and why): alert on the latter.
        "segment.launched",
        "segment.launch_failed",
    }
)


def public_name(stored_type: str) -> str:
    """The name subscribers see for a stored event type."""
    if stored_type.startswith(STORED_PREFIX):
        return PUBLIC_PREFIX + stored_type.removeprefix(STORED_PREFIX)
    return stored_type


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """The subscription's event patterns, checked: known names, ``<prefix>.*`` or ``*``.

    Raises:
        ValueError: an unknown event type, naming it and the known ones.
    """
    checked = []
    prefixes = {name.split(".")[0] for name in PUBLIC_EVENTS}
    for raw in patterns:
        pattern = raw.strip()
        if not pattern:
            continue
        known = pattern in PUBLIC_EVENTS or pattern == "*"
        if pattern.endswith(".*") and pattern[:-2] in prefixes:
            known = True
        if not known:
            raise ValueError(
                f"events: unknown event type {pattern!r}; expected one of "
                f"{', '.join(sorted(PUBLIC_EVENTS))}, a '<prefix>.*' or '*'"
            )
        checked.append(pattern)
    if not checked:
        raise ValueError("events: expected at least one event type")
    return checked


def matches(patterns: Iterable[str], public_type: str) -> bool:
    """Whether a public event type is one the patterns ask for."""
    for pattern in patterns:
        if pattern in ("*", public_type):
            return True
        if pattern.endswith(".*") and public_type.startswith(pattern[:-1]):
            return True
    return False
