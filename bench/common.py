"""What every bench script shares: the machine it ran on and the JSON it writes.

Each bench accepts ``--json PATH`` and writes there, through :func:`write_json`::

    {"bench": "<name>", "machine": {...},
     "figures": [{"name", "store", "baton", "bare", "ratio", "unit", "target", "note"}]}

``bench/run_all.py`` merges these files into one table (``make bench``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

UNITS = ("s", "ms", "MiB", "runs/s")

# The load average at the bench's start: given by bench/run_all.py (a bench may import this
# module only at its end), else taken when this module is imported.
LOAD_ENV = "BENCH_LOAD_AT_START"


def _load_at_start() -> list[float]:
    try:
        return [float(v) for v in json.loads(os.environ[LOAD_ENV])][:3]
    except (KeyError, ValueError, TypeError):
        return list(os.getloadavg())


_LOAD_AT_START = _load_at_start()


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The machine and the load around the bench: at import (start) and now (end)."""
    end = list(os.getloadavg())
    return {
        "cpus": os.cpu_count(),
        "model": _cpu_model(),
        "python": platform.python_version(),
        "dagster": _version("dagster"),
        "load_avg": [round(v, 2) for v in end],
        "load_avg_start": [round(v, 2) for v in _LOAD_AT_START],
        "load_avg_end": [round(v, 2) for v in end],
    }


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One printed line of :func:`machine`, for a bench's own header."""
    m = info or machine()
    start, end = m["load_avg_start"], m["load_avg_end"]
    return (
        f"{m['cpus']} cpus ({m['model']}), Python {m['python']}, Dagster {m['dagster']}, "
        f"load {start[0]:.2f} at start, {end[0]:.2f} now"
    )


def figure(
    name: str,
    baton: float,
    unit: str,
    *,
    bare: float | None = None,
    store: str | None = None,
    target: str | None = None,
    note: str | None = None,
    ratio: float | None = None,
) -> dict[str, Any]:
    """One figure of the contract; the ratio is baton/bare unless given (or no bare twin)."""
    if unit not in UNITS:
        raise ValueError(f"figure {name!r}: unit {unit!r}, expected one of {', '.join(UNITS)}")
    if store not in (None, "sqlite", "postgres"):
        raise ValueError(f"figure {name!r}: store {store!r}, expected sqlite, postgres or None")
    if ratio is None and bare:
        ratio = baton / bare
    return {
        "name": name,
        "store": store,
        "baton": float(baton),
        "bare": None if bare is None else float(bare),
        "ratio": None if ratio is None else round(float(ratio), 3),
        "unit": unit,
        "target": target,
        "note": note,
    }


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; the one value of a single sample."""
    if not values:
        raise ValueError("percentile of no values")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(q) - 1]


def write_json(path: str | Path, bench: str, figures: list[dict[str, Any]]) -> Path:
    """Write one bench's figures (and the machine) as the suite's JSON contract."""
    for item in figures:
        missing = {"name", "baton", "unit"} - set(item)
        if missing:
            raise ValueError(f"bench {bench}: a figure lacks {', '.join(sorted(missing))}")
    full = [
        {
            key: item.get(key)
            for key in ("name", "store", "baton", "bare", "ratio", "unit", "target", "note")
        }
        for item in figures
    ]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"bench": bench, "machine": machine(), "figures": full}
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return target


PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_postgres(admin_url: str, *roles: str) -> Iterator[dict[str, str]]:
    """One fresh database per role on the server of ``admin_url``; dropped afterwards.

    Yields:
        role -> SQLAlchemy URL of its database.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    tag = uuid.uuid4().hex[:10]
    names = {role: f"bench_{role}_{tag}" for role in roles}
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        base = make_url(admin_url)
        yield {
            role: base.set(database=name).render_as_string(hide_password=False)
            for role, name in names.items()
        }
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
