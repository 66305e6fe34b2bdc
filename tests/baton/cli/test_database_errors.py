"""A command that meets tables behind the code, or a database it cannot reach, prints one line
saying what to do (the URL's password masked) and exits 1, instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from baton.cli.main import main
from baton.db import migrate
from baton.db.engine import get_engine
from baton.settings import get_settings

PASSWORD = "hunter2-not-shown"


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: ")
    return captured.err


@pytest.fixture
def old_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url, "0010")
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    monkeypatch.setenv("BATON_AUTO_MIGRATE", "false")
    get_settings.cache_clear()
    return url


@pytest.mark.parametrize(
    "command", [["runs", "list"], ["tokens", "list"], ["webhooks", "list-sources"]]
)
def test_tables_behind_the_code_say_run_db_upgrade(
    capsys: pytest.CaptureFixture[str], old_sqlite: str, command: list[str]
) -> None:
    assert main(command) == 1
    err = one_line(capsys)
    head = migrate.head_revision()
    assert f"are at revision 0010, the code needs {head}: run `baton db upgrade`" in err
    assert migrate.current_revision(old_sqlite) == "0010"  # nothing migrated behind the back


@pytest.mark.parametrize("auto_migrate", ["false", "true"])
def test_tables_ahead_of_the_code_say_so(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    sqlite_db: str,
    auto_migrate: str,
) -> None:
    with get_engine(sqlite_db).begin() as connection:
        connection.execute(text(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '9999'"))
    monkeypatch.setenv("BATON_DATABASE_URL", sqlite_db)
    monkeypatch.setenv("BATON_AUTO_MIGRATE", auto_migrate)
    get_settings.cache_clear()
    assert main(["tokens", "list"]) == 1
    assert "at revision 9999, newer than this code knows" in one_line(capsys)


@pytest.mark.parametrize("command", [["runs", "list"], ["db", "current"], ["tokens", "list"]])
def test_an_unreachable_postgres_is_one_line_with_the_password_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    url = f"postgresql+psycopg2://baton:{PASSWORD}@127.0.0.1:1/baton"
    monkeypatch.setenv("BATON_DATABASE_URL", url)
    get_settings.cache_clear()
    assert main(command) == 1
    err = one_line(capsys)
    assert "cannot reach the database at postgresql+psycopg2://baton:***@127.0.0.1:1/baton" in err
    assert "Connection refused" in err and "BATON_DATABASE_URL" in err
    assert PASSWORD not in err


def test_a_current_database_is_not_blamed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("BATON_DATABASE_URL", db_url)
    get_settings.cache_clear()
    assert main(["runs", "list"]) == 0
    assert capsys.readouterr().err == ""
