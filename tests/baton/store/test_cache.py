"""The step cache's store (baton.store.cache) on SQLite and Postgres."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from baton.db.engine import session_scope
from baton.db.models import OrchestrationStep, StepCacheEntry, utcnow
from baton.secrets import Masker
from baton.state import IllegalTransition
from baton.store.cache import CacheFilter, CacheKey, input_hash
from baton.store.service import RunStore, StepPlan
from tests.baton.store.factories import ORG, spec

SECRET = "s3cr3t-value-for-the-cache"
HOUR = timedelta(hours=1)


@pytest.fixture
def store(db_url: str) -> RunStore:
    store = RunStore(db_url, masker=Masker([SECRET]))
    store.register_definition(
        organization=ORG,
        slug="hello",
        version=1,
        name="Hello",
        spec=spec(),
        checksum="sum-1",
        description=None,
        source_path=None,
    )
    return store


def _run(store: RunStore) -> uuid.UUID:
    run_id = store.create_run(organization=ORG, slug="hello", version=1, inputs={})
    store.begin_segment(
        run_id=run_id, dagster_run_id="dag-1", steps=[StepPlan("greet", "agent", "echo")]
    )
    return run_id


def key(text: str = "hi", org: str = ORG, version: str = "v1") -> CacheKey:
    return CacheKey(org, "echo", version, input_hash({"text": text}))


def test_input_hash_is_canonical() -> None:
    assert input_hash({"a": 1, "b": [1, 2]}) == input_hash({"b": [1, 2], "a": 1})
    assert input_hash({"a": 1}) != input_hash({"a": 2})
    assert len(input_hash(None)) == 64


def test_a_stored_answer_is_found_by_its_key_only(store: RunStore) -> None:
    run_id = _run(store)
    entry_id = store.cache.remember(
        run_id, "greet", key(), orchestration="hello", output={"t": "hi"}, ttl=HOUR
    )
    hit = store.cache.lookup(key(), HOUR)
    assert hit is not None and hit.entry_id == entry_id and hit.output == {"t": "hi"}
    assert 0 <= hit.age_seconds < 60
    assert store.cache.lookup(key("other"), HOUR) is None
    assert store.cache.lookup(key(org="globex"), HOUR) is None  # never across organizations
    assert store.cache.lookup(key(version="v2"), HOUR) is None  # a changed agent entry
    with store.session() as s:
        step = s.scalars(select(OrchestrationStep).where(OrchestrationStep.run_id == run_id)).one()
        assert step.cache == "miss"


def test_the_output_is_stored_masked(store: RunStore) -> None:
    run_id = _run(store)
    store.cache.remember(
        run_id, "greet", key(), orchestration="hello", output={"t": SECRET}, ttl=HOUR
    )
    with store.session() as s:
        [row] = s.scalars(select(StepCacheEntry)).all()
        assert SECRET not in str(row.output) and SECRET not in row.input_hash


def test_an_entry_older_than_the_ttl_is_not_used_and_is_purged_by_the_next_write(
    store: RunStore,
) -> None:
    run_id = _run(store)
    store.cache.remember(run_id, "greet", key(), orchestration="hello", output=1, ttl=HOUR)
    with store.session() as s:
        s.execute(update(StepCacheEntry).values(created_at=utcnow() - timedelta(hours=2)))
        s.execute(update(StepCacheEntry).values(expires_at=utcnow() - HOUR))
    assert store.cache.lookup(key(), HOUR) is None
    assert store.cache.lookup(key(), timedelta(hours=3)) is not None  # the reader's ttl counts
    store.cache.remember(run_id, "greet", key("b"), orchestration="hello", output=2, ttl=HOUR)
    assert [e.input_hash for e in store.cache.entries(CacheFilter())] == [key("b").input_hash]


def test_a_new_answer_for_a_key_replaces_the_old_one(store: RunStore) -> None:
    run_id = _run(store)
    store.cache.remember(run_id, "greet", key(), orchestration="hello", output=1, ttl=HOUR)
    store.cache.remember(run_id, "greet", key(), orchestration="hello", output=2, ttl=HOUR)
    hit = store.cache.lookup(key(), HOUR)
    assert hit is not None and hit.output == 2
    assert len(store.cache.entries(CacheFilter())) == 1


def test_a_step_with_deliverables_is_a_miss_without_an_entry(store: RunStore) -> None:
    run_id = _run(store)
    stored = store.cache.remember(
        run_id, "greet", key(), orchestration="hello", output=1, ttl=HOUR, store_entry=False
    )
    assert stored is None and store.cache.entries(CacheFilter()) == []


def test_a_hit_completes_the_step_with_its_events(store: RunStore) -> None:
    run_id = _run(store)
    store.cache.remember(run_id, "greet", key(), orchestration="hello", output={"t": 1}, ttl=HOUR)
    other = _run(store)
    hit = store.cache.lookup(key(), HOUR)
    assert hit is not None
    store.cache.complete_from_cache(
        other, "greet", hit=hit, input={"text": SECRET}, dagster_run_id="dag-2"
    )
    detail = store.run_detail(other)
    [step] = detail.steps
    assert (step.status, step.cache, step.output, step.attempt) == ("completed", "hit", {"t": 1}, 1)
    assert SECRET not in str(step.input)
    types = [e.type for e in detail.events]
    assert types[-2:] == ["step.cache_hit", "step.completed"]
    assert detail.events[-2].payload["cache_entry_id"] == str(hit.entry_id)
    assert detail.events[-1].payload["cache_hit"] is True
    with pytest.raises(IllegalTransition):  # done already: no second completion
        store.cache.complete_from_cache(other, "greet", hit=hit, input={}, dagster_run_id="d")


def test_invalidate_by_agent_step_orchestration_and_organization(store: RunStore) -> None:
    run_id = _run(store)
    for text in ("a", "b"):
        store.cache.remember(run_id, "greet", key(text), orchestration="hello", output=1, ttl=HOUR)
    with session_scope(store.url) as s:
        s.execute(
            update(StepCacheEntry)
            .where(StepCacheEntry.input_hash == key("b").input_hash)
            .values(step_id="other", expires_at=utcnow() - HOUR)
        )
    assert store.cache.invalidate(CacheFilter(organization="globex")) == 0
    assert store.cache.invalidate(CacheFilter(agent="summarizer")) == 0
    assert store.cache.invalidate(CacheFilter(orchestration="hello", step_id="nope")) == 0
    assert store.cache.invalidate(CacheFilter(expired_only=True)) == 1
    assert store.cache.invalidate(CacheFilter(orchestration="hello", step_id="greet")) == 1
    assert store.cache.entries(CacheFilter()) == []
