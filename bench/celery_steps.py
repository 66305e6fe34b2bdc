"""Steps on Celery workers: Baton's jobs vs the same shape of plain Dagster ops, both on
dagster-celery with the same two workers, broker and instance.

Two ``baton celery-worker`` processes (one slot each) listen on a queue of this bench's own on
the RabbitMQ at ``--broker``. Each round runs, interleaved:

- ``chain``: a chain of ``--steps`` steps (Baton: ``echo`` steps; bare: ops passing a dict):
  the cost a step pays on Celery (broker round trip, the job rebuilt in the worker);
- ``parallel``: two independent steps that each wait ``--hold`` seconds on a local HTTP
  server (Baton: the ``publisher`` agent; bare: an op making the same POST): about ``hold``
  seconds plus overhead, not twice ``hold``, when both workers take one.

Dagster's storage is SQLite in a temp ``DAGSTER_HOME`` (the workers are on this machine),
Baton's tables a SQLite file. Each run is ``execute_job`` of a reconstructable job in this
process (the run worker's part); wall time from submit to the run's end.

    .venv/bin/python bench/celery_steps.py [--rounds 3] [--steps 10] [--hold 2] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported first: bench.common notes the load average at the bench's start.
from bench.common import figure, machine_line, write_json  # noqa: E402

BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
BOUND = 300.0


# -- the bare Dagster jobs (module level: the workers rebuild them from this file) ------------


def _bare_executor() -> Any:
    from dagster_celery import celery_executor

    from baton.celery_worker import executor_config
    from baton.settings import get_settings

    return celery_executor.configured(executor_config(get_settings().execution), name="celery")


def bare_chain() -> Any:
    """``BENCH_STEPS`` + 2 ops in a chain passing a dict (Baton's chain has a start and a
    finish op around its steps), on the celery executor."""
    from dagster import (
        DependencyDefinition,
        GraphDefinition,
        In,
        OpDefinition,
        Out,
        Output,
    )

    count = int(os.environ.get("BENCH_STEPS", "10")) + 2

    # No annotation on the context: Dagster checks it, and this module's annotations are text.
    def body(_context, inputs: dict[str, Any]) -> Iterator[Any]:  # type: ignore[no-untyped-def]
        value = dict(inputs.get("prev") or {})
        value["n"] = value.get("n", 0) + 1
        yield Output(value, "result")

    ops = [
        OpDefinition(
            name=f"bare_{i}",
            ins={"prev": In(dict)} if i else {},
            outs={"result": Out(dict)},
            compute_fn=body,
        )
        for i in range(count)
    ]
    deps = {f"bare_{i}": {"prev": DependencyDefinition(f"bare_{i - 1}")} for i in range(1, count)}
    graph = GraphDefinition(name="bare_chain", node_defs=ops, dependencies=deps)
    return graph.to_job(name="bare_chain", executor_def=_bare_executor())


def bare_parallel() -> Any:
    """Two independent ops, each a POST to ``BATON_PUBLISH_URL``/publish."""
    from dagster import job, op

    def _post(step: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{os.environ['BATON_PUBLISH_URL']}/publish",
            data=json.dumps({"step": step}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return dict(json.loads(answer.read()))

    @op(name="bare_p1")
    def p1() -> dict[str, Any]:
        return _post("p1")

    @op(name="bare_p2")
    def p2() -> dict[str, Any]:
        return _post("p2")

    @job(name="bare_parallel", executor_def=_bare_executor())
    def parallel() -> None:
        p1()
        p2()

    return parallel


# -- the bench --------------------------------------------------------------------------------


def _chain_yaml(steps: int) -> str:
    lines = ["slug: celery-chain", "name: Celery chain", "version: 1", "steps:"]
    for i in range(steps):
        need = f", needs: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, agent: echo, with: {{n: {i}}}{need}}}")
    return "\n".join(lines) + "\n"


PARALLEL_YAML = """\
slug: celery-parallel
name: Celery parallel
version: 1
steps:
  - {id: p1, agent: publisher, with: {step: p1}}
  - {id: p2, agent: publisher, with: {step: p2}}
"""


@contextmanager
def _holding_server(hold: float) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(hold)
            payload = json.dumps({"echo": json.loads(body or b"null")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _workers(logs: Path) -> Iterator[None]:
    procs = []
    for name in ("w1", "w2"):
        log = logs / f"celery-{name}.log"
        with log.open("wb") as out:
            argv = ["celery-worker", "-n", f"bench-{name}@%h", "-c", "1", "--loglevel", "WARNING"]
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "baton.cli.main", *argv],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        _wait_ready()
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _wait_ready() -> None:
    """Until both workers answer a ping on the broker."""
    from baton.celery_worker import celery_app

    app = celery_app()
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        answers = app.control.ping(timeout=1.0) or []
        names = {name for answer in answers for name in answer}
        if sum(1 for n in names if n.startswith("bench-")) >= 2:
            return
        time.sleep(0.5)
    raise SystemExit("the Celery workers did not come up (see the logs in the temp folder)")


def _timed(run: Callable[[], bool]) -> float:
    started = time.perf_counter()
    if not run():
        raise SystemExit("a bench run failed")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="steps of the chain")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds of each parallel call")
    parser.add_argument("--broker", default=BROKER)
    parser.add_argument("--json", type=Path, help="write the figures there (bench JSON)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="baton-bench-celery-"))
    library = tmp / "library"
    library.mkdir()
    (library / "chain.yaml").write_text(_chain_yaml(args.steps))
    (library / "parallel.yaml").write_text(PARALLEL_YAML)
    with _holding_server(args.hold) as agent_url:
        os.environ.update(
            {
                "BATON_DATA_DIR": str(tmp / "data"),
                "DAGSTER_HOME": str(tmp / "data" / "dagster"),
                "BATON_DATABASE_URL": f"sqlite:///{tmp / 'baton.db'}",
                "BATON_LIBRARY_DIR": str(library),
                "BATON_EXECUTION__EXECUTOR": "celery",
                "BATON_EXECUTION__CELERY_BROKER": args.broker,
                "BATON_EXECUTION__CELERY_QUEUE": f"baton-bench-{uuid.uuid4().hex[:10]}",
                "BATON_PUBLISH_URL": agent_url,
                "BENCH_STEPS": str(args.steps),
                "PYTHONPATH": str(ROOT),
            }
        )
        figures = _measure(args, tmp)
    _report(args, figures)


def _measure(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, list[float]]]:
    from dagster import DagsterInstance, execute_job, reconstructable
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from baton.dagster_home import ensure_dagster_home
    from baton.library import prepare_database, sync_library
    from baton.settings import get_settings

    settings = get_settings()
    ensure_dagster_home(settings)
    # What a code server does on load: the jobs are then built from the stored specs.
    prepare_database(settings)
    sync_library(settings)
    repo = ReconstructableRepository.for_module(
        "orchestration_defs.definitions", "defs", working_directory=str(ROOT)
    )
    jobs = {
        "chain": (repo.get_reconstructable_job("celery_chain"), reconstructable(bare_chain)),
        "parallel": (
            repo.get_reconstructable_job("celery_parallel"),
            reconstructable(bare_parallel),
        ),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"baton": [], "bare": []} for k in jobs}
    with DagsterInstance.get() as instance, _workers(tmp):
        for round_ in range(args.rounds + 1):  # round 0 warms both sides up, not counted
            for name, (baton_job, bare_job) in jobs.items():
                for side, job in (("baton", baton_job), ("bare", bare_job)):

                    def run(job: Any = job) -> bool:
                        with execute_job(job, instance=instance, raise_on_error=False) as r:
                            return bool(r.success)

                    seconds = _timed(run)
                    if round_:
                        times[name][side].append(seconds)
    return times


def _report(args: argparse.Namespace, times: dict[str, dict[str, list[float]]]) -> None:
    notes = {
        "chain": f"{args.steps} steps in a chain on 2 Celery workers; median of {args.rounds}",
        "parallel": f"2 independent steps of {args.hold:g} s each on 2 workers; "
        f"median of {args.rounds} (one after the other would be >= {2 * args.hold:g} s)",
    }
    figures = [
        figure(
            f"celery {name}",
            round(statistics.median(sides["baton"]), 3),
            "s",
            bare=round(statistics.median(sides["bare"]), 3),
            store="sqlite",
            note=notes[name],
        )
        for name, sides in times.items()
    ]
    print(machine_line())
    print(f"{'figure':<18} {'baton s':>9} {'bare s':>9} {'ratio':>7}  note")
    for f in figures:
        print(
            f"{f['name']:<18} {f['baton']:>9.3f} {f['bare']:>9.3f} {f['ratio']:>7.2f}  {f['note']}"
        )
    if args.json:
        write_json(args.json, "celery_steps", figures)


if __name__ == "__main__":
    main()
