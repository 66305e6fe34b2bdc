"""The embedded finance dataset the ``supabase-agent`` tool agent queries by default.

Small but realistic and deterministic: 24 months (2024-01 to 2025-12) of KPIs for four regions,
simulated from per-region profiles with a string-seeded RNG (the same rows on every machine and
Python version). Amounts are in USD; ``regions.currency`` is each region's local currency.
APAC has a churn spike in 2025-04 and 2025-05, something for a KPI report to notice.

``seed_finance_db(url)`` creates the tables and inserts whatever rows are missing, on SQLite or
PostgreSQL, so running it again changes nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from baton.settings import get_settings

FIRST_YEAR = 2024
MONTH_COUNT = 24
_SEED = "baton-finance-v1"
_CHURN_SPIKE = {("APAC", "2025-04"): 1.9, ("APAC", "2025-05"): 1.6}

metadata = MetaData()

regions_table = Table(
    "regions",
    metadata,
    Column("region", String(8), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
)

kpi_monthly_table = Table(
    "kpi_monthly",
    metadata,
    Column("month", String(7), primary_key=True, comment="YYYY-MM"),
    Column("region", String(8), primary_key=True),
    Column("revenue", Numeric(14, 2), nullable=False),
    Column("costs", Numeric(14, 2), nullable=False),
    Column("gross_margin", Numeric(6, 4), nullable=False, comment="(revenue - costs) / revenue"),
    Column("new_customers", Integer, nullable=False),
    Column("churned_customers", Integer, nullable=False),
    Column("churn_rate", Numeric(6, 4), nullable=False, comment="churned / customers at start"),
    Column("mrr", Numeric(14, 2), nullable=False, comment="Monthly recurring revenue, month end"),
)


@dataclass(frozen=True)
class RegionProfile:
    """How one region's business behaves in the simulation."""

    region: str
    name: str
    currency: str
    customers: int
    arpa: float
    arpa_growth: float
    new_rate: float
    churn: float
    cost_ratio: float


PROFILES = (
    RegionProfile("EMEA", "Europe, Middle East & Africa", "EUR", 1400, 290.0, 0.004, 0.034,
                  0.021, 0.61),
    RegionProfile("NA", "North America", "USD", 1900, 315.0, 0.005, 0.032, 0.018, 0.57),
    RegionProfile("APAC", "Asia-Pacific", "SGD", 900, 255.0, 0.006, 0.050, 0.026, 0.66),
    RegionProfile("LATAM", "Latin America", "BRL", 520, 235.0, 0.007, 0.055, 0.031, 0.70),
)  # fmt: skip
REGIONS = tuple(p.region for p in PROFILES)


def months() -> list[str]:
    """The dataset's months, ``YYYY-MM``, oldest first."""
    return [f"{FIRST_YEAR + i // 12}-{i % 12 + 1:02d}" for i in range(MONTH_COUNT)]


def region_rows() -> list[dict[str, Any]]:
    """The rows of the ``regions`` table."""
    return [{"region": p.region, "name": p.name, "currency": p.currency} for p in PROFILES]


def kpi_rows() -> list[dict[str, Any]]:
    """The rows of the ``kpi_monthly`` table, by region then month (always the same)."""
    return [row for profile in PROFILES for row in _simulate(profile)]


def _noise(rng: random.Random, spread: float) -> float:
    return 1 + spread * (2 * rng.random() - 1)


def _simulate(profile: RegionProfile) -> list[dict[str, Any]]:
    rng = random.Random(f"{_SEED}:{profile.region}")
    customers = profile.customers
    rows = []
    for index, month in enumerate(months()):
        season = 1 + 0.05 * math.sin(2 * math.pi * (index - 2) / 12)
        spike = _CHURN_SPIKE.get((profile.region, month), 1.0)
        new = round(customers * profile.new_rate * season * _noise(rng, 0.15))
        churned = round(customers * profile.churn * spike * _noise(rng, 0.2))
        churn_rate = churned / customers
        customers += new - churned
        arpa = profile.arpa * (1 + profile.arpa_growth) ** index
        mrr = customers * arpa
        revenue = mrr * season * _noise(rng, 0.03) * 1.08
        costs = revenue * profile.cost_ratio * _noise(rng, 0.04)
        rows.append(_row(month, profile.region, revenue, costs, new, churned, churn_rate, mrr))
    return rows


def _row(
    month: str,
    region: str,
    revenue: float,
    costs: float,
    new: int,
    churned: int,
    churn_rate: float,
    mrr: float,
) -> dict[str, Any]:
    revenue, costs = round(revenue, 2), round(costs, 2)
    return {
        "month": month,
        "region": region,
        "revenue": revenue,
        "costs": costs,
        "gross_margin": round((revenue - costs) / revenue, 4),
        "new_customers": new,
        "churned_customers": churned,
        "churn_rate": round(churn_rate, 4),
        "mrr": round(mrr, 2),
    }


def default_finance_url() -> str:
    """The embedded database: ``sqlite:///<data_dir>/finance.db``."""
    return f"sqlite:///{get_settings().data_dir / 'finance.db'}"


def seed_finance_db(url: str) -> int:
    """Create the finance tables at ``url`` and insert the rows they lack.

    Idempotent: rows already there (by primary key) are left alone. Works on SQLite (the file
    and its folder are created) and on PostgreSQL.

    Returns:
        How many rows were inserted (0 when the database was already seeded).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    try:
        try:
            return _seed(engine.connect())
        except DBAPIError:
            # Another process created the tables or rows meanwhile: look again at what is missing.
            return _seed(engine.connect())
    finally:
        engine.dispose()


def _seed(connection: Connection) -> int:
    with connection, connection.begin():
        metadata.create_all(connection, checkfirst=True)
        inserted = _insert_missing(connection, regions_table, ("region",), region_rows())
        keys = ("month", "region")
        return inserted + _insert_missing(connection, kpi_monthly_table, keys, kpi_rows())


def _insert_missing(
    connection: Connection, table: Table, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> int:
    existing = {tuple(r) for r in connection.execute(select(*(table.c[k] for k in keys)))}
    missing = [row for row in rows if tuple(row[k] for k in keys) not in existing]
    if missing:
        connection.execute(table.insert(), missing)
    return len(missing)
