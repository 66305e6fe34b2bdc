"""The tree of a run: ``GET /api/v1/runs/{id}/tree`` (docs/sub-orchestrations.md)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends

from baton.api.auth import Principal, require
from baton.api.dagster import DagsterGateway
from baton.api.deps import get_dagster, get_store
from baton.api.errors import error_responses, not_found
from baton.lineage import SegmentStatuses, run_tree
from baton.store.service import RunStore, UnknownRun

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("/{run_id}/tree", responses=error_responses(401, 403, 404))
def get_tree(
    run_id: uuid.UUID,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
    dagster: DagsterGateway = Depends(get_dagster),  # noqa: B008
) -> dict[str, Any]:
    """The run and every child run below it, nested: status, orchestration, parent step and
    index, duration, and its Dagster segments as ``{dagster_run_id, status}`` (status null
    when Dagster cannot be read)."""
    try:
        return run_tree(
            store, run_id, organization=principal.organization, statuses=_statuses(dagster)
        )
    except UnknownRun:
        raise not_found(f"run {run_id}") from None


def _statuses(dagster: DagsterGateway) -> SegmentStatuses:
    def read(ids: Sequence[str]) -> dict[str, str]:
        try:
            return dagster.statuses(ids)
        except Exception as exc:  # the tree is Baton's; Dagster's statuses are a bonus
            log.warning("could not read segment statuses from Dagster: %s", type(exc).__name__)
            return {}

    return read
