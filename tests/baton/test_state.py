"""The run and step state machines, pair by pair, against tables written out here."""

from __future__ import annotations

import itertools

import pytest

from baton.db.models import APPROVAL_STATUSES, RUN_STATUSES, STEP_STATUSES
from baton.state import (
    APPROVAL_TRANSITIONS,
    DONE_STEP_STATUSES,
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    TERMINAL_RUN_STATUSES,
    IllegalTransition,
    sources_of,
)

# The designed transitions, written independently of baton.state on purpose.
LEGAL_RUN = {
    ("pending", "running"),
    ("pending", "failed"),
    ("pending", "aborted"),
    ("running", "awaiting_approval"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "aborted"),
    ("awaiting_approval", "running"),
    ("awaiting_approval", "failed"),
    ("awaiting_approval", "aborted"),
    ("running", "awaiting_children"),
    ("awaiting_children", "running"),
    ("awaiting_children", "failed"),
    ("awaiting_children", "aborted"),
    ("failed", "running"),
}
LEGAL_STEP = {
    ("pending", "running"),
    ("pending", "skipped"),
    ("pending", "waiting"),
    ("pending", "failed"),
    ("running", "running"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "waiting"),
    # An abort cancels the attempts that were running.
    ("running", "cancelled"),
    ("waiting", "running"),
    ("waiting", "completed"),
    ("waiting", "failed"),
    ("waiting", "skipped"),
    ("failed", "running"),
    ("failed", "skipped"),
    # A checkpoint's retry decision resets the retry step and everything after it.
    ("waiting", "pending"),
    ("failed", "pending"),
    ("completed", "pending"),
    ("skipped", "pending"),
    # A compensation undid the step; a later retry of the run runs it again.
    ("completed", "compensated"),
    ("compensated", "pending"),
    ("compensated", "running"),
}
RUN_PAIRS = list(itertools.product(RUN_STATUSES, repeat=2))
STEP_PAIRS = list(itertools.product(STEP_STATUSES, repeat=2))


def test_machines_know_exactly_the_statuses_the_tables_allow() -> None:
    assert set(RUN_TRANSITIONS) == set(RUN_STATUSES)
    assert set(STEP_TRANSITIONS) == set(STEP_STATUSES)
    for targets in RUN_TRANSITIONS.values():
        assert targets <= set(RUN_STATUSES)
    for targets in STEP_TRANSITIONS.values():
        assert targets <= set(STEP_STATUSES)


@pytest.mark.parametrize(("current", "target"), RUN_PAIRS, ids=[f"{a}->{b}" for a, b in RUN_PAIRS])
def test_run_transition(current: str, target: str) -> None:
    legal = (current, target) in LEGAL_RUN
    assert (target in RUN_TRANSITIONS[current]) is legal
    assert (current in sources_of(RUN_TRANSITIONS, target)) is legal


@pytest.mark.parametrize(
    ("current", "target"), STEP_PAIRS, ids=[f"{a}->{b}" for a, b in STEP_PAIRS]
)
def test_step_transition(current: str, target: str) -> None:
    legal = (current, target) in LEGAL_STEP
    assert (target in STEP_TRANSITIONS[current]) is legal
    assert (current in sources_of(STEP_TRANSITIONS, target)) is legal


def test_terminal_run_statuses() -> None:
    assert {"completed", "failed", "aborted"} == TERMINAL_RUN_STATUSES
    # completed and aborted are final; failed only leaves for a manual retry.
    assert RUN_TRANSITIONS["completed"] == frozenset()
    assert RUN_TRANSITIONS["aborted"] == frozenset()
    assert RUN_TRANSITIONS["failed"] == frozenset({"running"})


def test_done_step_statuses_only_leave_for_a_reset() -> None:
    assert {"completed", "skipped"} == DONE_STEP_STATUSES
    # A reset, or (a completed step only) its compensation after the run was aborted or failed.
    assert STEP_TRANSITIONS["completed"] == frozenset({"pending", "compensated"})
    assert STEP_TRANSITIONS["skipped"] == frozenset({"pending"})


def test_no_status_leads_back_to_pending() -> None:
    assert sources_of(RUN_TRANSITIONS, "pending") == []
    assert sources_of(STEP_TRANSITIONS, "pending") == [
        "compensated",
        "completed",
        "failed",
        "skipped",
        "waiting",
    ]


def test_sources_of_is_sorted() -> None:
    assert sources_of(RUN_TRANSITIONS, "running") == [
        "awaiting_approval",
        "awaiting_children",
        "failed",
        "pending",
    ]
    assert sources_of(STEP_TRANSITIONS, "skipped") == ["failed", "pending", "waiting"]


def test_illegal_transition_message() -> None:
    exc = IllegalTransition("run", "r1", "completed", "running")
    assert str(exc) == "run r1: cannot go from completed to running"
    assert (exc.current, exc.target) == ("completed", "running")
    missing = IllegalTransition("step", "x", None, "running")
    assert "cannot go from missing to running" in str(missing)


LEGAL_APPROVAL = {
    ("pending", "decided"),
    ("pending", "expired"),
    ("pending", "cancelled"),
    ("decided", "resuming"),
    ("resuming", "resumed"),
    # An abort (or a run that ended meanwhile) cancels a decision no segment acted on yet.
    ("decided", "cancelled"),
    ("resuming", "cancelled"),
}
APPROVAL_PAIRS = list(itertools.product(APPROVAL_TRANSITIONS, repeat=2))


@pytest.mark.parametrize(
    ("current", "target"), APPROVAL_PAIRS, ids=[f"{a}->{b}" for a, b in APPROVAL_PAIRS]
)
def test_approval_transition(current: str, target: str) -> None:
    legal = (current, target) in LEGAL_APPROVAL
    assert (target in APPROVAL_TRANSITIONS[current]) is legal


def test_approval_statuses_match_the_table() -> None:
    assert set(APPROVAL_TRANSITIONS) == set(APPROVAL_STATUSES)
