"""The step cache: an agent's stored answer to one rendered input, reused by a step with
``cache: {ttl: ...}`` instead of calling the agent again.

The key is (organization, agent, agent configuration version, input hash): the same agent at
the same catalog entry given the same input, in the same organization (an answer never crosses
organizations). Only the hash of the input is kept, and the output is stored masked, as the
step's own output is. An entry is used while younger than the reading step's ttl; entries past
the ttl they were written with are purged when a new entry is written and by
``baton cache invalidate --expired``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from baton.db.models import OrchestrationRun, OrchestrationStep, StepCacheEntry, utcnow
from baton.store.events import EventsRepository
from baton.store.runs import RunsRepository
from baton.store.steps import StepsRepository

if TYPE_CHECKING:
    from baton.store.service import RunStore


def input_hash(value: Any) -> str:
    """SHA-256 of ``value``'s canonical JSON (sorted keys, no spaces): equal inputs, equal hash."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """What makes two calls the same call."""

    organization: str
    agent: str
    agent_version: str
    input_hash: str


@dataclass(frozen=True)
class CacheHit:
    """A usable entry: its id, its (masked) output and its age when it was read."""

    entry_id: uuid.UUID
    output: Any
    age_seconds: float


@dataclass(frozen=True)
class CacheEntryRecord:
    """An entry as ``baton cache list`` and the API show it (never its output)."""

    id: uuid.UUID
    organization: str
    agent: str
    agent_version: str
    input_hash: str
    orchestration: str
    step_id: str
    run_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: StepCacheEntry) -> CacheEntryRecord:
        return cls(
            row.id,
            row.organization,
            row.agent,
            row.agent_version,
            row.input_hash,
            row.orchestration,
            row.step_id,
            row.run_id,
            row.created_at,
            row.expires_at,
        )


@dataclass(frozen=True)
class CacheFilter:
    """Which entries an invalidation or a listing concerns; every field given must match."""

    organization: str | None = None
    agent: str | None = None
    orchestration: str | None = None
    step_id: str | None = None
    expired_only: bool = False

    def where(self, now: datetime) -> list[ColumnElement[bool]]:
        entry = StepCacheEntry
        clauses: list[ColumnElement[bool]] = []
        for column, value in (
            (entry.organization, self.organization),
            (entry.agent, self.agent),
            (entry.orchestration, self.orchestration),
            (entry.step_id, self.step_id),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.expired_only:
            clauses.append(entry.expires_at <= now)
        return clauses


class CacheRepository:
    """Rows of ``step_cache``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def fresh(self, key: CacheKey, ttl: timedelta, now: datetime) -> StepCacheEntry | None:
        """The key's entry if it was written less than ``ttl`` ago."""
        return self.session.scalar(
            select(StepCacheEntry).where(
                StepCacheEntry.organization == key.organization,
                StepCacheEntry.agent == key.agent,
                StepCacheEntry.agent_version == key.agent_version,
                StepCacheEntry.input_hash == key.input_hash,
                StepCacheEntry.created_at > now - ttl,
            )
        )

    def put(self, key: CacheKey, *, ttl: timedelta, now: datetime, **fields: Any) -> StepCacheEntry:
        """Store the key's entry, replacing an older one (a refresh after its ttl)."""
        self.session.execute(delete(StepCacheEntry).where(*_key_clauses(key)))
        row = StepCacheEntry(
            organization=key.organization,
            agent=key.agent,
            agent_version=key.agent_version,
            input_hash=key.input_hash,
            created_at=now,
            expires_at=now + ttl,
            **fields,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def delete(self, which: CacheFilter, now: datetime) -> int:
        result = self.session.execute(
            delete(StepCacheEntry)
            .where(*which.where(now))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def list(self, which: CacheFilter, now: datetime, limit: int) -> Sequence[StepCacheEntry]:
        return self.session.scalars(
            select(StepCacheEntry)
            .where(*which.where(now))
            .order_by(StepCacheEntry.created_at.desc(), StepCacheEntry.id)
            .limit(limit)
        ).all()


def _key_clauses(key: CacheKey) -> list[ColumnElement[bool]]:
    return [
        StepCacheEntry.organization == key.organization,
        StepCacheEntry.agent == key.agent,
        StepCacheEntry.agent_version == key.agent_version,
        StepCacheEntry.input_hash == key.input_hash,
    ]


class StepCache:
    """The step cache as the op, the CLI and the API use it: each method is one transaction."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    def lookup(self, key: CacheKey, ttl: timedelta) -> CacheHit | None:
        """The entry to reuse, or None (none stored, or older than ``ttl``)."""
        now = utcnow()
        with self._store.session() as s:
            row = CacheRepository(s).fresh(key, ttl, now)
            if row is None:
                return None
            age = (now - _aware(row.created_at)).total_seconds()
            return CacheHit(row.id, row.output, max(age, 0.0))

    def complete_from_cache(
        self,
        run_id: uuid.UUID,
        step_id: str,
        *,
        hit: CacheHit,
        input: Any,
        dagster_run_id: str,
        segment: str | None = None,
        retry: bool = False,
    ) -> None:
        """Record the step completed with the entry's output, as a cache hit, with its events
        (``step.cache_hit``, then ``step.completed``): one transaction, no agent call.

        Raises:
            Superseded: ``segment`` is no longer the run's active segment.
            IllegalTransition: the step cannot start (an operator skipped it meanwhile).
        """
        from baton.store.service import _require_segment  # service composes this module

        with self._store.session() as s:
            if segment is not None:
                _require_segment(RunsRepository(s), run_id, segment)
            steps = StepsRepository(s)
            started = steps.start_attempt(
                run_id,
                step_id,
                input=self._store.mask(input),
                dagster_run_id=dagster_run_id,
                retry=retry,
            )
            row = steps.transition(
                run_id,
                step_id,
                "completed",
                of_attempt=started.attempt,
                output=hit.output,
                cache="hit",
                heartbeat_at=None,
            )
            payload = {"step_id": step_id, "attempt": row.attempt, "call": row.call_number}
            events = EventsRepository(s)
            organization = _organization(s, run_id)
            events.append(
                organization=organization,
                type="step.cache_hit",
                run_id=run_id,
                payload={
                    **payload,
                    "agent": row.agent,
                    "cache_entry_id": str(hit.entry_id),
                    "age_seconds": round(hit.age_seconds, 3),
                },
            )
            events.append(
                organization=organization,
                type="step.completed",
                run_id=run_id,
                payload={**payload, "usage": {}, "cache_hit": True},
            )

    def remember(
        self,
        run_id: uuid.UUID,
        step_id: str,
        key: CacheKey,
        *,
        orchestration: str,
        output: Any,
        ttl: timedelta,
        store_entry: bool = True,
    ) -> uuid.UUID | None:
        """Mark the step a cache miss and (``store_entry``) store its answer for the key;
        entries past their ttl are purged in the same transaction. Returns the entry's id."""
        now = utcnow()
        with self._store.session() as s:
            s.execute(
                update(OrchestrationStep)
                .where(OrchestrationStep.run_id == run_id, OrchestrationStep.step_id == step_id)
                .values(cache="miss")
                .execution_options(synchronize_session=False)
            )
            if not store_entry:
                return None
            repo = CacheRepository(s)
            repo.delete(CacheFilter(expired_only=True), now)
            try:
                with s.begin_nested():
                    row = repo.put(
                        key,
                        ttl=ttl,
                        now=now,
                        orchestration=orchestration,
                        step_id=step_id,
                        run_id=run_id,
                        output=self._store.mask(output),
                    )
            except IntegrityError:  # another step stored the same answer at the same moment
                return None
            return row.id

    def invalidate(self, which: CacheFilter) -> int:
        """Delete the entries ``which`` selects; returns how many."""
        with self._store.session() as s:
            return CacheRepository(s).delete(which, utcnow())

    def entries(self, which: CacheFilter, limit: int = 1000) -> list[CacheEntryRecord]:
        """Entries, newest first (without their outputs)."""
        with self._store.session() as s:
            rows = CacheRepository(s).list(which, utcnow(), limit)
            return [CacheEntryRecord.of(r) for r in rows]


def _organization(s: Session, run_id: uuid.UUID) -> str:
    run = s.get(OrchestrationRun, run_id)
    return run.organization if run else "global"


def _aware(value: datetime) -> datetime:
    # Some drivers hand back naive datetimes; the store writes UTC only.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
