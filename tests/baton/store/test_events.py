"""The event log: append-only, ordered by a global sequence."""

from __future__ import annotations

from sqlalchemy.orm import Session

from baton.db.engine import session_scope
from baton.store.events import EventsRepository
from tests.baton.store.factories import ORG, make_run


def test_append_assigns_an_increasing_sequence(session: Session) -> None:
    events = EventsRepository(session)
    run_id = make_run(session).id
    appended = [
        events.append(organization=ORG, type=f"e{i}", run_id=run_id, payload={"i": i})
        for i in range(5)
    ]
    sequences = [e.sequence for e in appended]
    assert all(isinstance(s, int) for s in sequences)
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == 5
    assert appended[0].payload == {"i": 0}
    assert appended[0].created_at is not None


def test_sequence_keeps_increasing_across_transactions(db_url: str) -> None:
    seen: list[int] = []
    for _ in range(3):
        with session_scope(db_url) as s:
            event = EventsRepository(s).append(organization=ORG, type="tick", run_id=None)
            seen.append(event.sequence)
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_payload_defaults_to_empty(session: Session) -> None:
    event = EventsRepository(session).append(organization=ORG, type="global", run_id=None)
    assert event.payload == {}
    assert event.run_id is None


def test_list_by_run_and_after_a_sequence(db_url: str) -> None:
    with session_scope(db_url) as s:
        events = EventsRepository(s)
        first, second = make_run(s).id, make_run(s).id
        for i in range(3):
            events.append(organization=ORG, type=f"first.{i}", run_id=first)
            events.append(organization=ORG, type=f"second.{i}", run_id=second)
        events.append(organization=ORG, type="global", run_id=None)

    with session_scope(db_url) as s:
        events = EventsRepository(s)
        everything = events.list()
        assert [e.type for e in everything] == [
            "first.0",
            "second.0",
            "first.1",
            "second.1",
            "first.2",
            "second.2",
            "global",
        ]
        of_first = events.list(run_id=first)
        assert [e.type for e in of_first] == ["first.0", "first.1", "first.2"]
        assert all(e.run_id == first for e in of_first)

        after = of_first[0].sequence
        assert [e.type for e in events.list(run_id=first, after=after)] == ["first.1", "first.2"]
        assert [e.type for e in events.list(after=everything[-2].sequence)] == ["global"]
        assert events.list(after=everything[-1].sequence) == []
        assert [e.type for e in events.list(run_id=second, limit=2)] == ["second.0", "second.1"]
