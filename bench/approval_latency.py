"""Approval decided -> resumed Dagster run started: latency over 20 decisions.

Starts the real deployment (`baton up`: webserver + daemon) in a temporary data folder for each
approval-sensor interval, pauses 20 runs of `content-review` at their checkpoint, decides them
at staggered moments (so they fall at different points of the sensor's tick), and measures from
each approval's `decided_at` to the RUN_START of the Dagster run that resumed it.

    .venv/bin/python bench/approval_latency.py                 # intervals 30 (Dagster's
                                                               # default), 5 (Baton's), 1
    .venv/bin/python bench/approval_latency.py --intervals 5 --decisions 20 [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BATON = str(Path(sys.executable).with_name("baton"))
LAUNCH = """mutation L($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename } }"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    response.raise_for_status()
    return response.json()["data"]


def _wait_up(url: str) -> None:
    query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
    for _ in range(180):
        try:
            if _graphql(url, query, {})["repositoriesOrError"]["nodes"]:
                return
        except (httpx.HTTPError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise RuntimeError("the deployment did not come up")


def measure(interval: int, decisions: int) -> list[float]:
    """Latencies in seconds for one sensor interval."""
    data = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    env = {
        **os.environ,
        "BATON_DATA_DIR": str(data),
        "DAGSTER_HOME": str(data / "dagster"),
        "BATON_SENSORS__APPROVAL_INTERVAL_SECONDS": str(interval),
    }
    os.environ.update(env)
    from baton.settings import get_settings

    get_settings.cache_clear()
    port = _port()
    url = f"http://127.0.0.1:{port}"
    log = (data / "up.log").open("w")
    proc = subprocess.Popen(
        [BATON, "up", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_up(url)
        return _run_decisions(url, decisions)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def _run_decisions(url: str, count: int) -> list[float]:
    from dagster import DagsterInstance, RunsFilter

    from baton.approvals import Approvals
    from baton.settings import get_settings
    from baton.store.service import RunStore
    from baton.store.users import UsersRepository

    store = RunStore(get_settings().db_url)
    with store.session() as s:
        UsersRepository(s).upsert(organization="global", name="bench", groups=["editors"])
    selector = {
        "repositoryLocationName": "baton",
        "repositoryName": "__repository__",
        "jobName": "content_review",
    }
    for i in range(count):
        params = {"selector": selector, "runConfigData": {"inputs": {"topic": f"bench {i}"}}}
        assert _graphql(url, LAUNCH, {"p": params})["launchRun"]["__typename"] == (
            "LaunchRunSuccess"
        )
    approvals = Approvals(store)
    while len(pending := approvals.find(status="pending")) < count:
        time.sleep(0.5)
    for approval in pending:
        approvals.decide(approval.id, user="bench", decision="continue")
        time.sleep(1.3)  # staggered: decisions land at every point of the sensor's cycle
    latencies = []
    with DagsterInstance.get() as instance:
        for approval in pending:
            latencies.append(_latency(instance, approvals, approval.id, RunsFilter))
    return latencies


def _latency(instance: Any, approvals: Any, approval_id: Any, runs_filter: Any) -> float:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = instance.get_run_records(
            runs_filter(tags={"baton/approval_id": str(approval_id)}), limit=1
        )
        if records and records[0].start_time:
            decided = approvals.get(approval_id).decided_at.timestamp()
            return float(records[0].start_time - decided)
        time.sleep(0.5)
    raise RuntimeError(f"approval {approval_id} was not resumed")


def _report(interval: int, values: list[float]) -> None:
    ordered = sorted(values)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(
        f"sensor interval {interval:>2} s: n={len(values)}  p50 {statistics.median(values):.2f} s"
        f"  p95 {p95:.2f} s  mean {statistics.mean(values):.2f} s  min {ordered[0]:.2f} s"
        f"  max {ordered[-1]:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intervals", type=int, nargs="+", default=[30, 5, 1])
    parser.add_argument("--decisions", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here (make bench)")
    args = parser.parse_args()
    print(f"approval decided -> resumed run started, {args.decisions} decisions per interval")
    series: dict[int, list[float]] = {}
    for interval in args.intervals:
        series[interval] = measure(interval, args.decisions)
        _report(interval, series[interval])
    if args.json:
        _write_figures(args.json, series)


def _write_figures(path: Path, series: dict[int, list[float]]) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from common import figure, percentile, write_json

    figures = []
    for interval, values in series.items():
        for q in (50, 95):
            figures.append(figure(
                f"approval decided -> resumed run started, sensor every {interval} s, p{q}",
                statistics.median(values) if q == 50 else percentile(values, 95), "s",
                store="sqlite", note=f"{len(values)} decisions; no bare twin (a sensor path)"
                if q == 50 else None,
            ))  # fmt: skip
    write_json(path, "approval_latency", figures)


if __name__ == "__main__":
    main()
