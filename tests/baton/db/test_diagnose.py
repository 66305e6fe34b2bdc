"""explain: database errors from the database's state become one line; others are left alone."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from baton.db.diagnose import explain, masked_url
from baton.db.migrate import SchemaNotCurrent


def test_an_error_not_about_the_database_is_left_alone(db_url: str) -> None:
    assert explain(ValueError("boom"), db_url) is None
    # A database error on current tables is a real failure: its traceback stays.
    assert explain(OperationalError("SELECT 1", {}, Exception("locked")), db_url) is None


def test_schema_not_current_on_a_current_database_keeps_its_message(db_url: str) -> None:
    assert explain(SchemaNotCurrent("raced"), db_url) == "raced"


def test_masked_url_hides_the_password_only() -> None:
    assert masked_url("postgresql://ann:s3cr%40t@db:5432/x") == "postgresql://ann:***@db:5432/x"
    assert masked_url("sqlite:////var/lib/baton/baton.db") == "sqlite:////var/lib/baton/baton.db"
