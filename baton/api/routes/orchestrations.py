"""Orchestrations: the definitions stored from the library, and validating a YAML text."""

from __future__ import annotations

import asyncio
import weakref

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request

from agent_resources.contracts import agent_input_checks
from baton.api import views
from baton.api.auth import Principal, require
from baton.api.deps import get_store
from baton.api.errors import ApiError, error_responses, not_found
from baton.api.schemas import (
    OrchestrationDetail,
    OrchestrationList,
    SpecProblem,
    ValidationResult,
)
from baton.store.definitions import DefinitionsRepository
from baton.store.service import RunStore
from orchestration_defs.language.library import load_text
from orchestration_defs.language.values import sanitized as clean
from orchestration_defs.language.yaml_loader import DEFAULT_LIMITS

router = APIRouter(prefix="/api/v1/orchestrations", tags=["orchestrations"])
AUTH_ERRORS = error_responses(401, 403)
# The loader's own size limit: a body the loader would refuse is not even read to its end.
MAX_YAML_BYTES = DEFAULT_LIMITS.max_bytes
# Parses at once; more wait without holding a thread, so the shared thread pool that answers
# every other route (/healthz included) never fills with parses.
MAX_PARALLEL_PARSES = 2
_parse_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.get("", response_model=OrchestrationList, responses=AUTH_ERRORS)
def list_orchestrations(
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
) -> OrchestrationList:
    """The newest version of each orchestration of the caller's organization."""
    with store.session() as s:
        rows = DefinitionsRepository(s).list(principal.organization, latest_only=True, limit=1000)
        return OrchestrationList(items=[views.orchestration(r) for r in rows])


@router.get("/{slug}", response_model=OrchestrationDetail, responses=error_responses(401, 403, 404))
def get_orchestration(
    slug: str,
    principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
) -> OrchestrationDetail:
    """One orchestration: its newest definition and every stored version number."""
    with store.session() as s:
        repo = DefinitionsRepository(s)
        row = repo.latest(principal.organization, slug)
        if row is None:
            raise not_found(f"orchestration '{slug}'")
        versions = [r.version for r in repo.list(principal.organization, slug=slug, limit=1000)]
        return OrchestrationDetail(
            **views.orchestration(row).model_dump(), versions=versions, spec=clean(row.spec)
        )


@router.post(
    "/validate",
    response_model=ValidationResult,
    responses=error_responses(401, 403, 413),
    openapi_extra=YAML_BODY,
)
async def validate(
    request: Request,
    _principal: Principal = Depends(require("viewer")),  # noqa: B008
) -> ValidationResult:
    """Check a definition given as YAML (the request body); nothing is saved.

    The answer is 200 either way: ``valid`` says whether it is, ``errors`` list each problem
    with its line and column.
    """
    body = await _bounded_body(request, MAX_YAML_BYTES)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid", "the body is not UTF-8 text", field="body") from exc
    # Parsing is CPU work: in a worker thread the event loop keeps answering (/healthz too).
    return await anyio.to_thread.run_sync(_validate_text, text, limiter=_slots())


def _slots() -> anyio.CapacityLimiter:
    """The parse limiter of the running event loop (a limiter belongs to one loop)."""
    loop = asyncio.get_running_loop()
    slots = _parse_slots.get(loop)
    if slots is None:
        slots = _parse_slots[loop] = anyio.CapacityLimiter(MAX_PARALLEL_PARSES)
    return slots


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the YAML body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the YAML body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _validate_text(text: str) -> ValidationResult:
    spec, errors = load_text(text, source="request", known_agents=agent_input_checks())
    return ValidationResult(
        valid=spec is not None and not errors,
        slug=spec.slug if spec is not None else None,
        version=spec.version if spec is not None else None,
        errors=[
            SpecProblem(line=e.line, column=e.column, field=e.field, message=e.message)
            for e in errors
        ],
    )
