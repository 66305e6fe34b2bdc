"""Why a database error happened, in one line a person can act on.

A command that meets a database it cannot reach, or tables behind (or ahead of) the code's
migrations, fails deep inside SQLAlchemy with a traceback. ``explain`` looks at the database
once more and says which of these it is, with the URL's password masked; any other error is
left alone (None), since it is not about the database's state.
"""

from __future__ import annotations

from alembic.util import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from baton.db import migrate
from baton.db.migrate import SchemaNotCurrent
from baton.secrets import Masker


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return Masker().text(url)


def _reason(exc: BaseException, url: str) -> str:
    """The driver's first line, with the URL's password masked should it appear."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    password = make_url(url).password if "://" in url else None
    return Masker([str(password)] if password else []).text(
        lines[0] if lines else type(exc).__name__
    )


def schema_message(url: str) -> str | None:
    """What is wrong with the revision of the tables at ``url``, or None when it is current.

    Raises:
        SQLAlchemyError: the database cannot be reached.
    """
    now, head = migrate.current_revision(url), migrate.head_revision()
    if now == head:
        return None
    if now is not None and not migrate.is_known(now):
        return (
            f"Baton's tables at {masked_url(url)} are at revision {now}, newer than this code "
            f"knows (its newest is {head}): run the code that migrated them, or upgrade it"
        )
    return (
        f"Baton's tables at {masked_url(url)} are at revision {now or 'base (empty)'}, the code "
        f"needs {head}: run `baton db upgrade`"
    )


def explain(exc: BaseException, url: str) -> str | None:
    """One line for a database error that comes from the database's state, else None."""
    if isinstance(exc, SchemaNotCurrent):
        return schema_message(url) or str(exc)
    # CommandError: Alembic meeting a revision it does not know, when auto-migrate is on.
    if not isinstance(exc, SQLAlchemyError | CommandError):
        return None
    try:
        behind = schema_message(url)
    except SQLAlchemyError as unreachable:
        return (
            f"cannot reach the database at {masked_url(url)}: {_reason(unreachable, url)} "
            "(check BATON_DATABASE_URL and that the server is running)"
        )
    return behind
