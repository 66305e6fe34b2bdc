"""The step cache of the caller's organization: invalidation (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from baton.api.auth import Principal, require
from baton.api.deps import get_store
from baton.api.errors import ApiError, error_responses
from baton.store.cache import CacheFilter
from baton.store.service import RunStore

router = APIRouter(prefix="/api/v1/cache", tags=["cache"])


class Invalidated(BaseModel):
    removed: int


@router.delete("", response_model=Invalidated, responses=error_responses(401, 403, 422))
def invalidate(
    principal: Principal = Depends(require("operator")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    agent: Annotated[str | None, Query(max_length=100)] = None,
    orchestration: Annotated[str | None, Query(max_length=100)] = None,
    step: Annotated[
        str | None, Query(max_length=100, description="A step id; needs orchestration.")
    ] = None,
    expired: Annotated[bool, Query(description="Only entries past their ttl.")] = False,
    all_: Annotated[
        bool, Query(alias="all", description="Every entry of the organization.")
    ] = False,
) -> Invalidated:
    """Delete stored step answers of your organization (all filters given must match); the
    next run of those steps calls its agent. Say what (``agent``, ``orchestration``, ``step``,
    ``expired``) or ``all=true``; answers how many entries were removed."""
    if step is not None and orchestration is None:
        raise ApiError(422, "invalid", "step: needs orchestration too", field="step")
    which = CacheFilter(
        organization=principal.organization,
        agent=agent,
        orchestration=orchestration,
        step_id=step,
        expired_only=expired,
    )
    if which == CacheFilter(organization=principal.organization) and not all_:
        raise ApiError(
            422,
            "invalid",
            "say what to invalidate (agent, orchestration, step, expired) or all=true",
            field="all",
        )
    return Invalidated(removed=store.cache.invalidate(which))
