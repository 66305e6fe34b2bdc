"""The step op's use of the step cache (``baton.store.cache``): look up before the call,
keep the answer after a completed one. Steps without ``cache:`` never reach the store here."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import cache
from typing import Any

from dagster import OpExecutionContext
from sqlalchemy.exc import SQLAlchemyError

from agent_resources.base import AgentResult
from agent_resources.catalog import agent_catalog
from baton.store.agents import entry_checksum
from baton.store.cache import CacheKey, input_hash
from baton.store.service import RunStore
from orchestration_defs.compiler.common import segment_of
from orchestration_defs.language.models import StepSpec


@cache
def agent_version(slug: str) -> str:
    """The agent's configuration version: the checksum of its catalog entry, as seeded into
    the ``agents`` table (a changed entry is a new version, so its old answers are not used)."""
    return entry_checksum(agent_catalog()[slug].model_dump(mode="json"))


def cache_key(step: StepSpec, baton: dict[str, Any], rendered: Any) -> CacheKey:
    return CacheKey(
        organization=baton["organization"],
        agent=step.agent or "",
        agent_version=agent_version(step.agent or ""),
        input_hash=input_hash(rendered),
    )


def cached_result(
    context: OpExecutionContext,
    store: RunStore,
    step: StepSpec,
    baton: dict[str, Any],
    rendered: Any,
) -> AgentResult | None:
    """On a hit, record the step completed from the cache and return the stored answer.

    Raises:
        Superseded, IllegalTransition: as ``RunStore.start_call`` does.
    """
    if step.cache is None:
        return None
    hit = store.cache.lookup(
        cache_key(step, baton, rendered), timedelta(seconds=step.cache.ttl_seconds)
    )
    if hit is None:
        return None
    store.cache.complete_from_cache(
        uuid.UUID(baton["run_id"]),
        step.id,
        hit=hit,
        input=rendered,
        dagster_run_id=context.run_id,
        segment=segment_of(context),
        retry=context.retry_number > 0,
    )
    context.log.info(
        f"step '{step.id}': cache hit (entry {hit.entry_id}, {hit.age_seconds:.0f} s old); "
        "the agent is not called"
    )
    return AgentResult(output=hit.output)


def remember_result(
    context: OpExecutionContext,
    store: RunStore,
    step: StepSpec,
    baton: dict[str, Any],
    rendered: Any,
    result: AgentResult,
) -> None:
    """After a completed call: mark the step a miss and keep its answer. A step that made
    deliverables is not stored (a hit would have none to show; docs/agents.md)."""
    if step.cache is None:
        return
    try:
        store.cache.remember(
            uuid.UUID(baton["run_id"]),
            step.id,
            cache_key(step, baton, rendered),
            orchestration=baton["orchestration"],
            output=result.output,
            ttl=timedelta(seconds=step.cache.ttl_seconds),
            store_entry=not result.deliverables,
        )
    except SQLAlchemyError as exc:
        # The answer is stored on the step already: a lost cache entry costs one later call.
        context.log.warning(f"step '{step.id}': its answer was not cached ({type(exc).__name__})")
