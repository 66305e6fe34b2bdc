"""Parallel steps: wall time of K independent I/O-bound steps and per-step cost of a chain.

For each executor (in_process, Baton's threaded executor, Dagster's multiprocess executor with
start method spawn and forkserver) it runs, on one Dagster instance (temp DAGSTER_HOME, SQLite)
and Baton's store on SQLite:

- ``parallel``: K (default 4) independent steps, each an HTTP call to a local server that
  answers after ``--delay`` seconds (default 2). Threads should take ~delay, in-process ~K x.
- ``chain``: 25 quick steps one after another; the figure is the run's wall time / 25.

Baton's twin is a compiled orchestration whose agent makes the call; the bare twin is plain
Dagster ops doing the same call, on the same executor. Each figure is one run after one
unmeasured warm-up run of the same job.

    .venv/bin/python bench/executors.py [--steps 4] [--delay 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dagster import (  # noqa: E402
    DagsterInstance,
    Definitions,
    DependencyDefinition,
    ExecutorDefinition,
    GraphDefinition,
    In,
    JobDefinition,
    Nothing,
    OpDefinition,
    Out,
    Output,
    build_reconstructable_job,
    execute_job,
    in_process_executor,
    multiprocess_executor,
)

from agent_resources.base import AgentRequest, AgentResult  # noqa: E402
from agent_resources.resources import AgentResource  # noqa: E402
from bench.common import figure, machine, machine_line, write_json  # noqa: E402

CHAIN = 25
EXECUTORS = ("in_process", "threaded", "multiprocess_spawn", "multiprocess_forkserver")


def executor_def(name: str, max_concurrent: int) -> ExecutorDefinition:
    """The executor under test by name."""
    from orchestration_defs.compiler.threaded_executor import threaded_executor

    if name == "in_process":
        return in_process_executor
    if name == "threaded":
        return threaded_executor.configured({"max_concurrent": max_concurrent}, name="threaded")
    method = name.removeprefix("multiprocess_")
    return multiprocess_executor.configured(
        {"start_method": {method: {}}, "max_concurrent": max_concurrent}, name=f"mp_{method}"
    )


def _call(url: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()


class CallAgent(AgentResource):
    """Baton's side: an agent whose call is an HTTP GET of ``url`` (a sleeping server)."""

    url: str

    def run(self, *, request: AgentRequest) -> AgentResult:
        if request.input.get("slow"):
            _call(self.url)
        return AgentResult(output={"ok": True})


def _spec_text(shape: str, steps: int) -> str:
    if shape == "parallel":
        body = "".join(
            f"  - id: s{i}\n    agent: echo\n    with: {{slow: true}}\n" for i in range(steps)
        )
    else:
        body = "  - id: s0\n    agent: echo\n    with: {slow: false}\n" + "".join(
            f"  - id: s{i}\n    agent: echo\n    needs: [s{i - 1}]\n    with: {{slow: false}}\n"
            for i in range(1, CHAIN)
        )
    return f"slug: bench-{shape}\nname: Bench\nversion: 1\nsteps:\n{body}"


def baton_job(shape: str, steps: int, executor: str, url: str, db: str) -> JobDefinition:
    """The compiled orchestration on ``executor`` (module level: reconstructable)."""
    from orchestration_defs.compiler.job import build_job
    from orchestration_defs.compiler.resources import BatonStoreResource
    from orchestration_defs.language.library import load_text

    spec, errors = load_text(_spec_text(shape, steps), source="bench.yaml", known_agents={"echo"})
    assert spec is not None, errors
    job = build_job(spec).with_executor_def(executor_def(executor, max(steps, 1)))
    resources = {
        "baton_store": BatonStoreResource(database_url=db),
        "agent_echo": CallAgent(slug="echo", url=url),
    }
    return Definitions(jobs=[job], resources=resources).get_job_def(spec.job_name)


def bare_job(shape: str, steps: int, executor: str, url: str) -> JobDefinition:
    """The same shape as plain Dagster ops (module level: reconstructable)."""

    def compute(slow: bool) -> Any:
        def fn(context, inputs):  # type: ignore[no-untyped-def]  # Dagster's raw compute form
            if slow:
                _call(url)
            yield Output(None, "done")

        return fn

    done = Out(Nothing)
    if shape == "parallel":
        ops = [
            OpDefinition(name=f"s{i}", compute_fn=compute(True), outs={"done": done})
            for i in range(steps)
        ]
        deps: dict[str, dict[str, DependencyDefinition]] = {}
    else:
        ops = [OpDefinition(name="s0", compute_fn=compute(False), outs={"done": done})]
        ops += [
            OpDefinition(
                name=f"s{i}",
                compute_fn=compute(False),
                ins={"after": In(Nothing)},
                outs={"done": done},
            )
            for i in range(1, CHAIN)
        ]
        deps = {
            f"s{i}": {"after": DependencyDefinition(f"s{i - 1}", "done")} for i in range(1, CHAIN)
        }
    graph = GraphDefinition(name=f"bare_{shape}", node_defs=ops, dependencies=deps)
    return graph.to_job(executor_def=executor_def(executor, max(steps, 1)))


class _Sleeper(BaseHTTPRequestHandler):
    delay = 2.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


def _timed(job: Any, instance: DagsterInstance) -> tuple[float, float]:
    """Wall time of one run, and the span of its steps (first step start -> last step end).

    The span leaves out the run's own start and finish (process, resources, Baton's start and
    finish ops), so it shows what the executor does with the steps.
    """
    started = time.perf_counter()
    with execute_job(job, instance, run_config=None) as result:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        run_id = result.run_id
    wall = time.perf_counter() - started
    stamps: dict[str, list[float]] = {"STEP_START": [], "STEP_SUCCESS": []}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not re.search(r"(^|__)s\d+$", event.step_key or ""):
            continue
        if event.event_type_value in stamps:
            stamps[event.event_type_value].append(entry.timestamp)
    return wall, max(stamps["STEP_SUCCESS"]) - min(stamps["STEP_START"])


def main() -> None:
    """Run every executor on both shapes, Baton and bare, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="independent steps (K)")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds each call takes")
    parser.add_argument("--executors", default=",".join(EXECUTORS))
    parser.add_argument("--shapes", default="parallel,chain", help="parallel, chain or both")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    info = machine()
    _Sleeper.delay = args.delay
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sleeper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    figures: list[dict[str, Any]] = []
    print(machine_line(info))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DAGSTER_HOME"] = tmp
        Path(tmp, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        from baton.db import migrate

        db = f"sqlite:///{tmp}/baton.db"
        migrate.upgrade(db)
        from baton.store.service import RunStore
        from orchestration_defs.language.library import load_text, spec_checksum

        for shape in ("parallel", "chain"):
            spec, _ = load_text(
                _spec_text(shape, args.steps), source="b.yaml", known_agents={"echo"}
            )
            assert spec is not None
            RunStore(db).register_definition(
                organization=spec.organization,
                slug=spec.slug,
                version=spec.version,
                name=spec.name,
                spec=spec.model_dump(mode="json", by_alias=True),
                checksum=spec_checksum(spec),
                description=None,
                source_path=None,
            )
        with DagsterInstance.local_temp(tmp) as instance:
            for executor in args.executors.split(","):
                for shape in args.shapes.split(","):
                    times: dict[str, tuple[float, float]] = {}
                    for side in ("baton", "bare"):
                        fn, extra = ("baton_job", (db,)) if side == "baton" else ("bare_job", ())
                        job = build_reconstructable_job(
                            "bench.executors",
                            fn,
                            reconstructable_args=(shape, args.steps, executor, url, *extra),
                        )
                        _timed(job, instance)  # warm-up
                        times[side] = _timed(job, instance)
                    if shape == "parallel":
                        label = f"{executor}: {args.steps} parallel steps of {args.delay:g} s"
                        rows = [
                            (f"{label}, run wall time", 0, 1.0, "s"),
                            (f"{label}, first step start -> last step end", 1, 1.0, "s"),
                        ]
                    else:
                        label = f"{executor}: per step of a {CHAIN}-step chain"
                        rows = [(f"{label} (run wall time / {CHAIN})", 0, 1000.0 / CHAIN, "ms")]
                    for name, index, scale, unit in rows:
                        row = figure(
                            name,
                            times["baton"][index] * scale,
                            unit,
                            bare=times["bare"][index] * scale,
                            store="sqlite",
                        )
                        figures.append(row)
                        print(
                            f"{name:70s} baton {row['baton']:8.2f} {unit:2s}  "
                            f"bare {row['bare']:8.2f} {unit:2s}  ratio {row['ratio']:.2f}",
                            flush=True,
                        )
    server.shutdown()
    if args.json:
        write_json(args.json, "executors", figures)


if __name__ == "__main__":
    main()
