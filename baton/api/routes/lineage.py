"""The tree of a run: ``GET /api/v1/runs/{id}/tree`` (docs/sub-orchestrations.md)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends

from baton.api.auth import Principal, require
from baton.api.deps import get_store
from baton.api.errors import error_responses, not_found
from baton.lineage import run_tree
from baton.store.service import RunStore, UnknownRun

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("/{run_id}/tree", responses=error_responses(401, 403, 404))
def get_tree(
    run_id: uuid.UUID,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
) -> dict[str, Any]:
    """The run and every child run below it, nested: status, orchestration, parent step and
    index, duration and Dagster segments of each."""
    try:
        return run_tree(store, run_id, organization=principal.organization)
    except UnknownRun:
        raise not_found(f"run {run_id}") from None
