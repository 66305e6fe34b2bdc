"""The embedded finance dataset: deterministic rows, idempotent seeding on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from agent_resources.finance_data import (
    REGIONS,
    default_finance_url,
    kpi_monthly_table,
    kpi_rows,
    months,
    region_rows,
    regions_table,
    seed_finance_db,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database (no migrations), once on SQLite and once on Postgres."""
    yield request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            kpis = conn.scalar(select(func.count()).select_from(kpi_monthly_table))
            regions = conn.scalar(select(func.count()).select_from(regions_table))
    finally:
        engine.dispose()
    return int(kpis or 0), int(regions or 0)


def test_months_cover_2024_and_2025() -> None:
    assert months()[0] == "2024-01"
    assert months()[-1] == "2025-12"
    assert len(months()) == len(set(months())) == 24


def test_rows_are_deterministic_and_complete() -> None:
    rows = kpi_rows()
    assert rows == kpi_rows()
    assert len(rows) == 96
    assert {(r["month"], r["region"]) for r in rows} == {(m, g) for m in months() for g in REGIONS}
    assert set(REGIONS) == {"EMEA", "NA", "APAC", "LATAM"}
    assert [r["region"] for r in region_rows()] == list(REGIONS)


def test_rows_are_internally_consistent() -> None:
    for row in kpi_rows():
        assert row["revenue"] > row["costs"] > 0
        assert row["gross_margin"] == pytest.approx(
            (row["revenue"] - row["costs"]) / row["revenue"], abs=1e-4
        )
        assert 0 < row["churn_rate"] < 0.1
        assert row["new_customers"] > 0 and row["churned_customers"] > 0
        assert row["mrr"] > 0


def test_apac_has_a_churn_spike_in_spring_2025() -> None:
    apac = {r["month"]: r["churn_rate"] for r in kpi_rows() if r["region"] == "APAC"}
    usual = max(rate for month, rate in apac.items() if month not in ("2025-04", "2025-05"))
    assert apac["2025-04"] > usual


def test_seed_is_idempotent(empty_url: str) -> None:
    assert seed_finance_db(empty_url) == 100
    assert counts(empty_url) == (96, 4)
    assert seed_finance_db(empty_url) == 0
    assert counts(empty_url) == (96, 4)


def test_seed_restores_missing_rows(empty_url: str) -> None:
    seed_finance_db(empty_url)
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM kpi_monthly WHERE region = 'LATAM'"))
    engine.dispose()
    assert counts(empty_url) == (72, 4)
    assert seed_finance_db(empty_url) == 24
    assert counts(empty_url) == (96, 4)


def test_seeded_values_match_the_dataset(empty_url: str) -> None:
    seed_finance_db(empty_url)
    engine = create_engine(empty_url)
    with engine.connect() as conn:
        stored = conn.execute(select(kpi_monthly_table)).mappings().all()
    engine.dispose()
    expected = {(r["month"], r["region"]): r for r in kpi_rows()}
    assert len(stored) == 96
    for row in stored:
        want = expected[(row["month"], row["region"])]
        for column, value in want.items():
            if isinstance(value, str):
                assert row[column] == value
            else:  # Postgres gives Decimal for NUMERIC, SQLite float
                assert float(row[column]) == pytest.approx(value), column


def test_default_url_is_in_the_data_dir(isolated_settings: Path) -> None:
    assert default_finance_url() == f"sqlite:///{isolated_settings / 'finance.db'}"


def test_seed_creates_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'folder' / 'finance.db'}"
    assert seed_finance_db(url) == 100
    assert (tmp_path / "new" / "folder" / "finance.db").exists()
