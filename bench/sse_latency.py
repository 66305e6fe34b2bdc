"""Event written -> received by an SSE client on ``/api/v1/runs/{id}/events``, p50/p95.

``baton up`` in a temp data folder on free ports (SQLite), a one-step generated orchestration
launched through ``POST /api/v1/runs`` and run to its end, then an httpx client streams that
run's events (``Accept: text/event-stream``) while this process appends N events (default 50)
of type ``bench.probe`` to the run through Baton's own store (``EventsRepository.append``, one
transaction each, as every writer of events does). Each latency is from just before the write
(session opened, row added, committed) to the line arriving at the client. Writes are spaced
0.2-0.5 s apart (not a multiple of the stream's poll). The stream polls the table every
``BATON_API__EVENTS_POLL_SECONDS`` (0.5 s by default), so about half of that is expected.

Bare twin: none. Dagster's webserver has GraphQL subscriptions over websockets for a run's
logs, but no SSE and no event log of Baton's; the figure stands alone.

    .venv/bin/python bench/sse_latency.py [--events 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from code_location_load import write_library  # noqa: E402
from common import figure, machine_line, percentile, write_json  # noqa: E402
from resume_latency import Deployment, _store, _wait, deployment  # noqa: E402

PROBE = "bench.probe"


def _finished_run(dep: Deployment, store: Any) -> uuid.UUID:
    from baton.store.runs import RunsRepository

    body = {"orchestration": "gen-0000", "inputs": {"topic": "sse"}}
    answer = dep.call("operator", "POST", "/api/v1/runs", body)
    answer.raise_for_status()
    run_id = uuid.UUID(answer.json()["run_id"])

    def ended() -> bool:
        with store.session() as s:
            run = RunsRepository(s).get(run_id)
            return run is not None and run.status in ("completed", "failed")

    _wait("the run to end", ended, 300, 0.2)
    return run_id


class Listener(threading.Thread):
    """Reads the run's SSE stream; notes when each probe arrives."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.received: dict[int, float] = {}
        self.opened = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        try:
            with httpx.stream("GET", self.url, headers=headers, timeout=None) as response:
                response.raise_for_status()
                self.opened.set()
                kind = ""
                for line in response.iter_lines():
                    now = time.time()
                    if line.startswith("event: "):
                        kind = line[len("event: ") :]
                    elif line.startswith("data: ") and kind == PROBE:
                        data = json.loads(line[len("data: ") :])
                        self.received[int(data["payload"]["index"])] = now
                    if self.stop.is_set():
                        return
        except BaseException as error:  # reported by the main thread
            self.error = error
            self.opened.set()


def _write(store: Any, run_id: uuid.UUID, index: int) -> float:
    from baton.store.events import EventsRepository

    began = time.time()
    with store.session() as s:
        EventsRepository(s).append(
            organization="global", type=PROBE, run_id=run_id, payload={"index": index}
        )
    return began


def measure(base: Path, events: int) -> dict[str, Any]:
    library = write_library(base / "library", 1, 1)
    with deployment(base, "deployment", library) as dep:
        store = _store()
        run_id = _finished_run(dep, store)
        listener = Listener(f"{dep.api}/api/v1/runs/{run_id}/events", dep.tokens["operator"])
        listener.start()
        listener.opened.wait(60)
        if listener.error:
            raise RuntimeError(f"the event stream failed: {listener.error}")
        time.sleep(1.0)  # the stream's first page (the run's own events) is sent
        written: dict[int, float] = {}
        for index in range(events):
            written[index] = _write(store, run_id, index)
            time.sleep(random.uniform(0.2, 0.5))
        with contextlib.suppress(TimeoutError):
            _wait("the last probes", lambda: len(listener.received) >= events, 30, 0.05)
        listener.stop.set()
        _write(store, run_id, events)  # a last line, so the reader sees the stop
        listener.join(10)
    from baton.settings import get_settings

    poll = get_settings().api.events_poll_seconds
    got = [listener.received[i] - written[i] for i in written if i in listener.received]
    return {"latencies": got, "lost": events - len(got), "poll": poll}


def report(results: dict[str, Any], events: int) -> list[dict[str, Any]]:
    values = results["latencies"]
    if not values:
        raise RuntimeError(f"none of {events} events reached the SSE client")
    p50, p95 = statistics.median(values), percentile(values, 95)
    lost = f"; {results['lost']} not received in 30 s" if results["lost"] else ""
    note = (
        f"{len(values)} events, stream poll {results['poll']} s{lost}; no bare twin: "
        "Dagster has no SSE (GraphQL subscriptions over websockets only)"
    )
    print(f"machine: {machine_line()}")
    print(f"{events} events appended to one run, read by an SSE client, baton up on SQLite\n")
    print("| measure | n | p50 s | p95 s | max s |\n|---|---|---|---|---|")
    print(f"| event written -> SSE client | {len(values)} | {p50:.3f} | {p95:.3f} "
          f"| {max(values):.3f} |")  # fmt: skip
    return [
        figure("event written -> SSE received, p50", p50, "s", store="sqlite", note=note),
        figure("event written -> SSE received, p95", p95, "s", store="sqlite"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="baton-sse-bench-"))
    try:
        results = measure(base, args.events)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    figures = report(results, args.events)
    if args.json:
        write_json(args.json, "sse_latency", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
