"""Opaque cursors: the sort key of the last item seen, base64url-encoded JSON.

Clients pass ``next_cursor`` back unchanged; its content is not part of the API.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from baton.api.errors import ApiError

MAX_LIMIT = 200
# The query parameter every paginated route takes.
CursorParam = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
]


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> ApiError:
    """422 naming ``cursor``: it is not one this API handed out."""
    message = "cursor: not a cursor from this API (pass next_cursor as is)"
    return ApiError(422, "invalid", message, field="cursor")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The key inside ``cursor``.

    Raises:
        ApiError: 422 naming ``cursor`` when it is not one this API handed out.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != size:
        raise invalid_cursor()
    return key
