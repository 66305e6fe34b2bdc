"""A stream never moves past an event that is still committing: the horizon of the event log.

On Postgres a sequence is taken at insert and seen at commit, so a later event can be visible
before an earlier one; these tests hold a transaction open in one connection while another
commits, on the real database.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, insert
from sqlalchemy.engine import Connection

from baton.api.queries import events_after, sequences_after
from baton.api.sse import Horizon
from baton.db.models import OrchestrationEvent
from baton.store.service import RunStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_contiguous_log_is_complete_up_to_its_end() -> None:
    assert Horizon(5, Clock()).advance(3, [4, 5, 6]) == 6
    assert Horizon(5, Clock()).advance(3, []) == 3


def test_a_gap_holds_the_horizon_until_it_fills() -> None:
    clock = Clock()
    horizon = Horizon(5, clock)
    assert horizon.advance(3, [4, 6, 7]) == 4  # 5 may still be committing
    clock.now = 4.9
    assert horizon.advance(4, [6, 7]) == 4
    assert horizon.advance(4, [5, 6, 7]) == 7  # it came


def test_a_gap_older_than_the_settle_time_is_a_rollback_and_is_passed() -> None:
    clock = Clock()
    horizon = Horizon(5, clock)
    assert horizon.advance(3, [4, 6]) == 4
    clock.now = 5.0
    assert horizon.advance(4, [6, 9]) == 6  # 5 never came; 7-8 are new and wait their turn
    clock.now = 10.0
    assert horizon.advance(6, [9]) == 9


def _event(conn: Connection, org: str = "acme") -> int:
    row = conn.execute(
        insert(OrchestrationEvent)
        .values(organization=org, type="test.event", payload={})
        .returning(OrchestrationEvent.sequence)
    )
    return int(row.scalar_one())


@pytest.mark.postgres
@pytest.mark.parametrize("ending", ["commit", "rollback"])
def test_an_event_still_committing_is_not_skipped(pg_db: str, ending: str) -> None:
    engine = create_engine(pg_db)
    store = RunStore(pg_db)
    clock = Clock()
    horizon = Horizon(5, clock)

    def read(after: int) -> tuple[int, list[int]]:
        with store.session() as s:
            upto = horizon.advance(after, sequences_after(s, after=after, limit=100))
            rows = events_after(s, "acme", after=after, upto=upto, limit=100)
            return upto, [r.sequence for r in rows]

    with engine.connect() as slow:
        slow_tx = slow.begin()
        first = _event(slow)  # taken, not yet visible
        with engine.begin() as fast:
            second = _event(fast)
        assert second > first
        after, seen = read(first - 1)
        assert seen == [] and after == first - 1  # second is visible but must wait
        finish: Callable[[], None] = slow_tx.commit if ending == "commit" else slow_tx.rollback
        finish()
    if ending == "commit":
        assert read(after) == (second, [first, second])
    else:
        assert read(after) == (after, [])  # perhaps still committing: wait
        clock.now = 5.0
        assert read(after) == (second, [second])
    engine.dispose()
