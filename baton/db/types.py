"""Column types shared by Baton's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is UTC and timezone-aware on the way in and on the way out.

    Postgres (``timestamptz``) hands back aware datetimes; SQLite keeps the text without an
    offset and hands back naive ones, which the API then wrote without ``+00:00``. Everything
    Baton stores is UTC, so a naive value read back is UTC; an aware value written in another
    zone is converted first, because SQLite would drop its offset and keep the local time.
    The DDL is ``DateTime(timezone=True)``'s, so migrations and stored rows are unchanged.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
