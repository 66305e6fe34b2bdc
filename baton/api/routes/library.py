"""The deployed library's problems: files left out of the code location, with their errors."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from baton.api.auth import Principal, require
from baton.api.deps import get_store
from baton.api.errors import error_responses
from baton.api.schemas import UtcDatetime
from baton.library import library_problems
from baton.store.service import RunStore

router = APIRouter(prefix="/api/v1/library", tags=["library"])


class FileError(BaseModel):
    line: int | None
    column: int | None
    field: str
    message: str


class LibraryProblem(BaseModel):
    path: str
    errors: list[FileError]
    synced_at: UtcDatetime | None


class LibraryProblems(BaseModel):
    items: list[LibraryProblem]


@router.get("/problems", response_model=LibraryProblems, responses=error_responses(401, 403))
def list_problems(
    _principal: Principal = Depends(require("viewer")),  # noqa: B008
    store: RunStore = Depends(get_store),  # noqa: B008
) -> LibraryProblems:
    """The invalid library files the last sync left out of the code location, every error
    with its line and column. Empty when every file is valid."""
    return LibraryProblems(
        items=[
            LibraryProblem(
                path=p.path,
                errors=[FileError.model_validate(e) for e in p.errors],
                synced_at=p.synced_at,
            )
            for p in library_problems(store)
        ]
    )
