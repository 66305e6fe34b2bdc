"""How long `/readyz` takes to answer with Postgres healthy, cut off, and back.

Creates a fresh Postgres database (Baton's tables and Dagster's storage in it) reached through
a local TCP proxy, starts the API in-process (FastAPI's test client, lifespan included), and
times `/readyz` in each phase. "Cut" means the proxy holds every connection and forwards
nothing, the way a dead network path looks (no refusal): before the readiness deadlines it
hung for as long as the client waited.

    .venv/bin/python bench/readyz_outage.py [--requests 10] [--pg postgresql+psycopg2://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from baton.api.app import create_app  # noqa: E402
from baton.db import migrate  # noqa: E402
from baton.settings import ApiSettings, DagsterSettings, Settings  # noqa: E402
from tests.baton.api.tcp_proxy import CuttableProxy  # noqa: E402

ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _phase(client: TestClient, count: int) -> tuple[list[float], list[int]]:
    took, codes = [], []
    for _ in range(count):
        started = time.perf_counter()
        codes.append(client.get("/readyz").status_code)
        took.append(time.perf_counter() - started)
    return took, codes


def _line(name: str, took: list[float], codes: list[int]) -> str:
    return f"| {name} | {sorted(set(codes))} | {statistics.median(took):.3f} | {max(took):.3f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--pg", default=ADMIN, help="an admin URL of the Postgres to use")
    args = parser.parse_args()
    admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    name = f"baton_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    real = make_url(args.pg).set(database=name)
    proxy = CuttableProxy((real.host or "127.0.0.1", real.port or 5432))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            via = real.set(host="127.0.0.1", port=proxy.port)
            url = via.render_as_string(hide_password=False)
            migrate.upgrade(url)
            home = Path(tmp) / "dagster"
            home.mkdir()
            (home / "dagster.yaml").write_text(
                "telemetry: {enabled: false}\nstorage:\n  postgres:\n"
                f"    postgres_url: {url.replace('+psycopg2', '')}\n"
            )
            settings = Settings(
                data_dir=Path(tmp) / "data",
                database_url=url,
                dagster=DagsterSettings(home=home),
                api=ApiSettings(prewarm=False),
            )
            with TestClient(create_app(settings)) as client:
                print("| phase | status codes | median s | max s |\n|---|---|---|---|")
                client.get("/readyz")  # the first check opens Dagster's instance
                print(_line("healthy", *_phase(client, args.requests)))
                proxy.cut()
                print(_line("cut off", *_phase(client, args.requests)))
                proxy.restore()
                print(_line("restored", *_phase(client, args.requests)))
    finally:
        proxy.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
