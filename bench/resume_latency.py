"""Decide -> the next step's agent call, and run start vs library size: issue 8's acceptance.

On a real deployment (``baton up`` in a temp data folder, SQLite, the shipped ``dagster.yaml``:
WarmRunLauncher and QueuedRunCoordinator), in one run, p50/p95 over N decisions (default 20):

1. **fast**: a decision through the HTTP API (``POST /api/v1/approvals/{id}/decision`` with an
   approver token; the API claims and launches the next segment itself) -> the ``step.started``
   event of ``publish``, the step after ``content-review``'s checkpoint. "Decide" is the wall
   clock just before the POST is sent.
2. **sensor**: a decision recorded by ``Approvals(store).decide`` in this process (no fast path,
   as the timeout sensor's ``continue`` does) -> the same event; the daemon's approval sensor
   (interval 5 s by default) resumes it.
3. **floor**: a one-op bare Dagster job (a module written by the bench) on the SAME instance
   and run launcher, 20 launches through ``instance.launch_run`` -> the op's code starting (it
   writes ``time.time()`` to a file). Given from before ``create_run`` (a whole launch: plan
   from the code server, run record, launch) and from ``launch_run`` alone.
4. **runstart**: launch through ``POST /api/v1/runs`` -> the first step's ``step.started`` of a
   generated 10-step definition, with a library of 1 and of 500 such definitions (a deployment
   each, ``BATON_LIBRARY_DIR``); the ratio 500/1.

Decisions are staggered (``--stagger``, 1.3 s) after every run paused at its checkpoint. For each
resumed run the bench also reads where the time went: Baton's events (``checkpoint.decided``,
``segment.launched``, ``run.segment_started``) and the Dagster run's own (created,
RUN_ENQUEUED/DEQUEUED, RUN_STARTING, RUN_START, STEP_START of each op), and prints the p50 of each
mark after the decision.

    .venv/bin/python bench/resume_latency.py [--decisions 20] [--json out.json]
    .venv/bin/python bench/resume_latency.py --only fast,floor --decisions 5
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from code_location_load import write_library  # noqa: E402  (the generator of that bench)

BATON = str(Path(sys.executable).with_name("baton"))
PARTS = ("fast", "sensor", "floor", "runstart")
TARGETS = {"fast": 1.0, "sensor": 6.0, "ratio": 1.2}
BARE_MODULE = """
import os, time
from pathlib import Path
from dagster import Definitions, OpExecutionContext, in_process_executor, job, op


@op
def first(context: OpExecutionContext) -> None:
    out = Path(os.environ["RESUME_BENCH_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    (out / context.run_id).write_text(repr(time.time()))


@job(executor_def=in_process_executor)
def bare_job() -> None:
    first()


defs = Definitions(jobs=[bare_job])
"""


# a deployment ---------------------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ts(moment: datetime) -> float:
    """Seconds since the epoch; SQLite hands back naive UTC datetimes."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass
class Deployment:
    """``baton up`` in its own data folder, with an operator and an approver token."""

    data: Path
    library: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    ui: str = ""
    api: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    sensor_interval: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # applied last (other benches)

    @property
    def home(self) -> Path:
        return Path(self.extra_env.get("DAGSTER_HOME", self.data / "dagster"))

    def start(self) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        self.env.update(
            BATON_DATA_DIR=str(self.data),
            DAGSTER_HOME=str(self.home),
            DAGSTER_DISABLE_TELEMETRY="1",
            # 20 launches and decisions a minute are above the per-token defaults' comfort.
            BATON_API__LAUNCH_PER_MINUTE="100000",
            BATON_API__DECIDE_PER_MINUTE="100000",
        )
        if self.sensor_interval is not None:
            self.env["BATON_SENSORS__APPROVAL_INTERVAL_SECONDS"] = str(self.sensor_interval)
        if self.library is not None:
            self.env["BATON_LIBRARY_DIR"] = str(self.library)
        self.env.update(self.extra_env)
        # This process reads the same store and instance as the deployment.
        for key in [k for k in os.environ if k.startswith("BATON_")]:
            del os.environ[key]
        os.environ.update(self.env)
        from baton.settings import get_settings

        get_settings.cache_clear()
        port, api_port = _port(), _port()
        self.ui, self.api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
        self.tokens = {
            "operator": self._token("ops", "operator", []),
            "approver": self._token("bench", "approver", ["editors"]),
        }
        log = (self.data / "up.log").open("w")
        argv = [BATON, "up", "--port", str(port), "--api-port", str(api_port)]
        self.proc = subprocess.Popen(
            argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._wait_up()

    def _token(self, user: str, role: str, groups: list[str]) -> str:
        group_args = [arg for g in groups for arg in ("--group", g)]
        self._cli("users", "add", user, *group_args)
        return self._cli("tokens", "create", "--user", user, "--role", role).splitlines()[0]

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [BATON, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"baton {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
        return done.stdout

    def _wait_up(self, timeout: float = 600) -> None:
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"baton up exited; see {self.data / 'up.log'}")
            with contextlib.suppress(httpx.HTTPError, KeyError, TypeError):
                answer = httpx.post(f"{self.ui}/graphql", json={"query": query}, timeout=30)
                nodes = answer.json()["data"]["repositoriesOrError"]["nodes"]
                if nodes and httpx.get(f"{self.api}/healthz", timeout=5).status_code == 200:
                    return
            time.sleep(1)
        raise RuntimeError("the deployment did not come up")

    def call(self, role: str, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return httpx.request(method, f"{self.api}{path}", json=body, headers=headers, timeout=60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # baton up stops its children (webserver, daemon, API) on SIGTERM, then their groups.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        from baton.warm_launcher import client

        # The zygote has a session of its own; a process still shutting down may hold a lease.
        for _ in range(3):
            client.stop(self.home)
            with contextlib.suppress(TimeoutError):
                _wait("the zygote to exit", lambda: client.ping(self.home) is None, 10, 0.2)
                return


@contextlib.contextmanager
def deployment(
    base: Path,
    name: str,
    library: Path | None = None,
    sensor_interval: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    dep = Deployment(
        data=base / name,
        library=library,
        sensor_interval=sensor_interval,
        extra_env=dict(extra_env or {}),
    )
    dep.data.mkdir(parents=True)
    try:
        dep.start()
        yield dep
    finally:
        dep.stop()


# reading what happened ------------------------------------------------------------------------


def _store() -> Any:
    from baton.settings import get_settings
    from baton.store.service import RunStore

    return RunStore(get_settings().db_url)


def _instance(home: Path, overrides: dict[str, Any] | None = None) -> Any:
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides))


def _events(store: Any, run_id: uuid.UUID) -> list[Any]:
    from baton.store.events import EventsRepository

    with store.session() as s:
        return list(EventsRepository(s).list(run_id=run_id, limit=1000))


def _step_started(store: Any, run_id: uuid.UUID, step_id: str, after: float) -> float | None:
    for event in _events(store, run_id):
        when = _ts(event.created_at)
        ours = event.type == "step.started" and event.payload.get("step_id") == step_id
        if ours and when >= after - 0.5:  # a coarse guard against an earlier attempt
            return when
    return None


def _dagster_marks(instance: Any, dagster_run_id: str) -> dict[str, float]:
    """When the Dagster run was created, queued, launched, started, and each op started."""
    record = instance.get_run_record_by_id(dagster_run_id)
    marks = {"dagster run created": record.create_timestamp.timestamp()}
    for entry in instance.all_logs(dagster_run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type.name  # the value of RUN_START is still PIPELINE_START
        if kind in ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START"):
            marks.setdefault(kind, entry.timestamp)
        elif kind in ("STEP_START", "STEP_SUCCESS") and event.step_key:
            marks.setdefault(f"{kind} {event.step_key.split('__')[-1]}", entry.timestamp)
    return marks


def _baton_marks(store: Any, run_id: uuid.UUID, dagster_run_id: str, after: float) -> dict:
    marks: dict[str, float] = {}
    for event in _events(store, run_id):
        when = _ts(event.created_at)
        if when < after - 0.5:
            continue
        if event.type in ("checkpoint.decided", "segment.launched") or (
            event.type == "run.segment_started"
            and event.payload.get("dagster_run_id") == dagster_run_id
        ):
            marks.setdefault(event.type, when)
    return marks


def _wait(what: str, check: Any, timeout: float = 180, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(what)


# parts 1 and 2: decide -> publish starts ------------------------------------------------------


@dataclass
class Sample:
    seconds: float | None
    marks: dict[str, float] = field(default_factory=dict)


def _launch_paused(dep: Deployment, store: Any, instance: Any, count: int) -> list[Any]:
    """``count`` content-review runs launched through the API, each paused at its checkpoint
    with its Dagster segment over; returns their pending approvals."""
    from dagster import RunsFilter

    from baton.approvals import Approvals
    from baton.segments import RUN_TAG

    run_ids = []
    for i in range(count):
        answer = dep.call(
            "operator", "POST", "/api/v1/runs",
            {"orchestration": "content-review", "inputs": {"topic": f"bench {i}"}},
        )  # fmt: skip
        answer.raise_for_status()
        run_ids.append(uuid.UUID(answer.json()["run_id"]))
    approvals = Approvals(store)
    return _wait_paused(approvals, instance, run_ids, RunsFilter, RUN_TAG)


def _wait_paused(
    approvals: Any, instance: Any, run_ids: list[uuid.UUID], runs_filter: Any, run_tag: str
) -> list[Any]:
    def paused() -> list[Any] | None:
        found = [approvals.find(status="pending", run_id=r) for r in run_ids]
        if not all(found):
            return None
        for run_id in run_ids:
            records = instance.get_run_records(runs_filter(tags={run_tag: str(run_id)}))
            if not records or not all(r.dagster_run.is_finished for r in records):
                return None
        return [a[0] for a in found]

    pending: list[Any] = _wait("runs paused at their checkpoint", paused, timeout=600, every=0.5)
    time.sleep(2)  # let the last workers exit: decisions start on a quiet machine
    return pending


def _resumed_run(instance: Any, approval_id: uuid.UUID) -> str | None:
    from dagster import RunsFilter

    from baton.segments import APPROVAL_TAG

    records = instance.get_run_records(RunsFilter(tags={APPROVAL_TAG: str(approval_id)}))
    return records[0].dagster_run.run_id if records else None


def _collect(store: Any, instance: Any, approval: Any, decided: float, extra: dict) -> Sample:
    try:
        end = _wait(
            f"publish of run {approval.run_id} started",
            lambda: _step_started(store, approval.run_id, "publish", decided),
            timeout=120,
        )
    except TimeoutError:
        return Sample(None)
    # The resumed run's own events are written a moment after its step starts.
    dagster_run_id = _wait("the resumed run", lambda: _resumed_run(instance, approval.id), 30)
    marks = {**extra, "step.started publish": end}
    marks.update(_baton_marks(store, approval.run_id, dagster_run_id, decided))
    marks.update(_dagster_marks(instance, dagster_run_id))
    return Sample(end - decided, {k: v - decided for k, v in marks.items()})


def decide_series(dep: Deployment, count: int, stagger: float, *, fast: bool) -> list[Sample]:
    from baton.approvals import Approvals

    store = _store()
    with _instance(dep.home) as instance:
        pending = _launch_paused(dep, store, instance, count)
        decided: list[tuple[Any, float, dict[str, float]]] = []
        for approval in pending:
            began = time.time()
            extra: dict[str, float] = {}
            if fast:
                path = f"/api/v1/approvals/{approval.id}/decision"
                dep.call("approver", "POST", path, {"decision": "continue"}).raise_for_status()
                extra["POST answered"] = time.time()
            else:
                Approvals(store).decide(approval.id, user="bench", decision="continue")
            decided.append((approval, began, extra))
            time.sleep(max(0.0, began + stagger - time.time()))
        time.sleep(1)  # the last one's segment writes its events
        return [_collect(store, instance, a, t, extra) for a, t, extra in decided]


def sensor_ticks(dep: Deployment, after: float, before: float) -> list[float]:
    """Start times of the approval sensor's ticks in the window: its real period."""
    from dagster._core.scheduler.instigation import InstigatorType

    with _instance(dep.home) as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name == "baton_approval_sensor":
                ticks = instance.get_ticks(
                    state.instigator_origin_id, state.selector_id, before=before, after=after
                )
                return sorted(tick.timestamp for tick in ticks)
    return []


# part 3: the floor ----------------------------------------------------------------------------


DEFAULT_LAUNCHER = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}


def floor_series(dep: Deployment, count: int, *, default: bool = False) -> dict[str, list[float]]:
    """A bare one-op job on the deployment's instance: launch -> its op's code starting.

    ``default``: with Dagster's DefaultRunLauncher instead of the instance's (context only).
    """
    from dagster._core.workspace.load_target import PythonFileTarget

    module = dep.data / "bare_bench_job.py"
    module.write_text(BARE_MODULE)
    out = dep.data / "bare-out"
    os.environ["RESUME_BENCH_OUT"] = str(out)  # a run worker takes the launcher's environment
    target = PythonFileTarget(
        python_file=str(module),
        attribute="defs",
        working_directory=str(dep.data),
        location_name="bare",
    )
    samples: dict[str, list[float]] = {"whole launch": [], "launch_run only": []}
    overrides = {"run_launcher": DEFAULT_LAUNCHER} if default else None
    with (
        _instance(dep.home, overrides) as instance,
        _bare_workspace(instance, target, dep) as ws,
    ):
        samples["launcher"] = [type(instance.run_launcher).__name__]  # type: ignore[list-item]
        _bare_once(instance, ws, out)  # warm-up: the code server's first plan, a lease
        for _ in range(count):
            whole, launch_only = _bare_once(instance, ws, out)
            samples["whole launch"].append(whole)
            samples["launch_run only"].append(launch_only)
            time.sleep(0.5)
    return samples


@contextlib.contextmanager
def _bare_workspace(instance: Any, target: Any, dep: Deployment) -> Iterator[Any]:
    from dagster._core.workspace.context import WorkspaceProcessContext

    from baton.launch import children_output_to

    with (
        children_output_to(dep.data / "logs" / "bench-bare.log"),
        WorkspaceProcessContext(instance, target) as process,
    ):
        yield process.create_request_context()


def _bare_once(instance: Any, ws: Any, out: Path) -> tuple[float, float]:
    began = time.time()
    location = ws.get_code_location("bare")
    repo = next(iter(location.get_repositories().values()))
    remote = repo.get_full_job("bare_job")
    from baton.launch import create_run_of

    run = create_run_of(instance, location, repo, remote, {}, {})
    launched = time.time()
    instance.launch_run(run.run_id, ws)
    marker = out / run.run_id
    _wait("the bare op", marker.exists, timeout=120, every=0.01)
    _wait("the bare run", lambda: instance.get_run_by_id(run.run_id).is_finished, 120, 0.05)
    op_started = float(marker.read_text())
    return op_started - began, op_started - launched


# part 4: run start vs library size ------------------------------------------------------------


def runstart_series(base: Path, definitions: int, steps: int, count: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in (1, definitions):
        library = write_library(base / f"library-{size}", size, steps)
        with deployment(base, f"runstart-{size}", library) as dep:
            results[str(size)] = _runstart(dep, count)
    return results


def _runstart(dep: Deployment, count: int) -> list[Sample]:
    store = _store()
    samples = []
    with _instance(dep.home) as instance:
        _launch_one(dep, store, instance)  # warm-up: the API's code server and the zygote
        time.sleep(3)
        for _ in range(count):
            samples.append(_launch_one(dep, store, instance))
            time.sleep(0.5)
    return samples


def _launch_one(dep: Deployment, store: Any, instance: Any) -> Sample:
    from baton.store.runs import RunsRepository

    began = time.time()
    body = {"orchestration": "gen-0000", "inputs": {"topic": "bench"}}
    answer = dep.call("operator", "POST", "/api/v1/runs", body)
    answered = time.time()
    answer.raise_for_status()
    run_id = uuid.UUID(answer.json()["run_id"])
    try:
        end = _wait("the first step", lambda: _step_started(store, run_id, "s0", began), 300)
    except TimeoutError:
        return Sample(None)

    def finished() -> str | None:
        with store.session() as s:
            run = RunsRepository(s).get(run_id)
            done = run is not None and run.status in ("completed", "failed")
            return run.last_dagster_run_id if done and run is not None else None

    dagster_run_id = _wait("the run to end", finished, 300)
    marks = {"POST answered": answered, "step.started s0": end}
    marks.update(_baton_marks(store, run_id, dagster_run_id, began))
    marks.update(_dagster_marks(instance, dagster_run_id))
    return Sample(end - began, {k: v - began for k, v in marks.items()})


# report ---------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _summary(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"n": 0, "missing": len(values)}
    return {
        "n": len(got),
        "missing": len(values) - len(got),
        "p50": statistics.median(got),
        "p95": _pct(got, 0.95),
        "min": min(got),
        "max": max(got),
    }


def _breakdown(samples: list[Sample]) -> list[tuple[str, float, int]]:
    """Each mark's p50 offset from the start, in the order they happen."""
    names = {name for s in samples for name in s.marks}
    rows = []
    for name in names:
        values = [s.marks[name] for s in samples if name in s.marks]
        rows.append((name, statistics.median(values), len(values)))
    return sorted(rows, key=lambda row: row[1])


def _row(label: str, summary: dict[str, Any], target: str, met: str) -> str:
    if not summary.get("n"):
        return f"| {label} | 0 | - | - | {target} | no data |"
    missing = f" ({summary['missing']} missing)" if summary["missing"] else ""
    return (
        f"| {label} | {summary['n']}{missing} | {summary['p50']:.3f} | {summary['p95']:.3f} |"
        f" {target} | {met} |"
    )


def report(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    out = sys.stdout
    summaries: dict[str, Any] = {
        key: _summary([s.seconds for s in results[key]])
        for key in ("fast", "sensor")
        if key in results
    }
    floor = results.get("floor")
    if floor:
        summaries["floor"] = _summary(floor["whole launch"])
        summaries["floor_launch_run"] = _summary(floor["launch_run only"])
    if "floor_default" in results:
        summaries["floor_default"] = _summary(results["floor_default"]["whole launch"])
    for size, samples in results.get("runstart", {}).items():
        summaries[f"runstart_{size}"] = _summary([s.seconds for s in samples])
    out.write(_header(args))
    out.write("| measure | n | p50 s | p95 s | target | met |\n|---|---|---|---|---|---|\n")
    for line in _rows(summaries, args, floor):
        out.write(line + "\n")
    ratio = _ratio(summaries, args)
    if ratio is not None:
        met = "yes" if ratio <= TARGETS["ratio"] else "NO"
        out.write(f"\nrun start ratio {args.definitions}/1 (p50): {ratio:.2f}"
                  f" (target <= {TARGETS['ratio']}: {met})\n")  # fmt: skip
    ticks = results.get("sensor_ticks") or []
    if len(ticks) > 1:
        gaps = [b - a for a, b in itertools.pairwise(ticks)]
        out.write(
            f"\napproval sensor: {len(ticks)} ticks during the sensor series, p50 period"
            f" {statistics.median(gaps):.2f} s (min {min(gaps):.2f}, max {max(gaps):.2f});"
            f" minimum_interval_seconds {args.sensor_interval or _default_interval()}\n"
        )
    for key, label in (("fast", "fast path"), ("sensor", "sensor path")):
        if key in results:
            _write_breakdown(f"{label}: p50 time of each mark after the decision", results[key])
    for size, samples in results.get("runstart", {}).items():
        _write_breakdown(f"run start, {size} definition(s): p50 after the POST", samples)
    out.write(f"\n# load average at the end: {os.getloadavg()[0]:.1f}\n")
    return {"summaries": summaries, "ratio": ratio}


def _header(args: argparse.Namespace) -> str:
    return (
        f"# Decide -> next agent call (content-review: review -> publish), {args.decisions}"
        f" decisions each, stagger {args.stagger} s; run start over {args.launches} launches\n"
        f"# machine: {os.cpu_count()} cores, {platform.machine()}, {_memory()},"
        f" Python {platform.python_version()}, Dagster {_dagster_version()}; `baton up`,"
        f" SQLite, deploy/dagster.yaml\n\n"
    )


def _default_interval() -> int:
    from baton.settings import SensorSettings

    return SensorSettings().approval_interval_seconds


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _rows(summaries: dict[str, Any], args: argparse.Namespace, floor: Any) -> list[str]:
    # The floor Dagster sets is a bare job on Dagster's own run launcher; Baton's warm launcher
    # lowers it for every run, bare ones included, so the fast path is shown against both.
    dagster_floor = summaries.get("floor_default", {}).get("p50")
    warm_floor = summaries.get("floor", {}).get("p50")
    rows = []
    if "fast" in summaries:
        fast = summaries["fast"].get("p50")
        verdicts = [
            f"<= {TARGETS['fast']} s: " + _yes(fast is not None and fast <= TARGETS["fast"])
        ]
        if dagster_floor:
            verdicts.append(
                "<= Dagster's floor: " + _yes(fast is not None and fast <= dagster_floor)
            )
        if warm_floor and fast is not None:
            verdicts.append(f"{fast / warm_floor:.2f}x a bare job on Baton's launcher")
        target = "p50 <= 1.0 s and <= the bare launch"
        rows.append(_row("fast path: API decision -> publish step.started", summaries["fast"],
                         target, "; ".join(verdicts)))  # fmt: skip
    if "sensor" in summaries:
        p50 = summaries["sensor"].get("p50")
        met = "yes" if p50 is not None and p50 <= TARGETS["sensor"] else "NO"
        rows.append(_row("sensor path: Approvals.decide -> publish step.started",
                         summaries["sensor"], "p50 <= 6 s", met))  # fmt: skip
    if floor:
        launcher = floor["launcher"][0]
        rows.append(_row(f"floor: bare job, plan + create_run + launch_run -> op ({launcher})",
                         summaries["floor"], "-", "-"))  # fmt: skip
        rows.append(_row("floor: bare job, launch_run -> op", summaries["floor_launch_run"],
                         "-", "-"))  # fmt: skip
    if "floor_default" in summaries:
        rows.append(_row("floor Dagster sets: the same bare job on Dagster's DefaultRunLauncher",
                         summaries["floor_default"], "-", "-"))  # fmt: skip
    for size in ("1", str(args.definitions)):
        if f"runstart_{size}" in summaries:
            rows.append(_row(f"run start, {size} definition(s): POST /runs -> s0 step.started",
                             summaries[f"runstart_{size}"], "-", "-"))  # fmt: skip
    return rows


def _ratio(summaries: dict[str, Any], args: argparse.Namespace) -> float | None:
    one = summaries.get("runstart_1", {}).get("p50")
    many = summaries.get(f"runstart_{args.definitions}", {}).get("p50")
    return many / one if one and many else None


def _write_breakdown(title: str, samples: list[Sample]) -> None:
    out = sys.stdout
    out.write(f"\n{title}\n\n| mark | p50 s | n |\n|---|---|---|\n")
    for name, p50, n in _breakdown(samples):
        out.write(f"| {name} | {p50:.3f} | {n} |\n")


def _memory() -> str:
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return "memory unknown"
    return f"{kib / 1024 / 1024:.0f} GiB"


def _dagster_version() -> str:
    from dagster.version import __version__

    return str(__version__)


def _to_json(results: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace) -> dict:
    def series(samples: list[Sample]) -> list[dict[str, Any]]:
        return [{"seconds": s.seconds, "marks": s.marks} for s in samples]

    raw: dict[str, Any] = {}
    for key in ("fast", "sensor"):
        if key in results:
            raw[key] = series(results[key])
    for key in ("floor", "floor_default", "sensor_ticks"):
        if key in results:
            raw[key] = results[key]
    if "runstart" in results:
        raw["runstart"] = {size: series(s) for size, s in results["runstart"].items()}
    return {
        "args": vars(args),
        "machine": {"cores": os.cpu_count(), "memory": _memory(), "arch": platform.machine()},
        "targets": TARGETS,
        **summary,
        "samples": raw,
    }


# main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma list of {PARTS}")
    parser.add_argument("--decisions", type=int, default=20)
    parser.add_argument("--launches", type=int, default=20, help="run starts per library size")
    parser.add_argument("--stagger", type=float, default=1.3, help="seconds between decisions")
    parser.add_argument("--definitions", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--sensor-interval", type=int, help="BATON_SENSORS__APPROVAL_INTERVAL_SECONDS (default 4)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folders")
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    base = Path(tempfile.mkdtemp(prefix="baton-resume-bench-"))
    try:
        results = _measure(base, parts, args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    summary = report(results, args)
    if args.json:
        _write_figures(args.json, summary, args)
        # The samples and marks stay beside the suite's figures, for a closer look.
        payload = json.loads(args.json.read_text())
        payload["detail"] = _to_json(results, summary, args)
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


def _write_figures(path: Path, summary: dict[str, Any], args: argparse.Namespace) -> None:
    """The suite's figures (bench/common.py's contract)."""
    from common import figure, write_json

    sums = summary["summaries"]

    def p(key: str, q: str = "p50") -> float | None:
        value = sums.get(key, {}).get(q)
        return None if value is None else float(value)

    dagster_floor = p("floor_default")
    figures = []
    for key, label, target in (
        ("fast", "API decision -> next step started", f"<= {TARGETS['fast']} s"),
        ("sensor", "Approvals.decide (sensor path) -> next step started", None),
    ):
        for q in ("p50", "p95"):
            value = p(key, q)
            if value is not None:
                figures.append(figure(
                    f"resume: {label}, {q}", value, "s", store="sqlite",
                    bare=p("floor_default", q) if key == "fast" else None,
                    target=target if q == "p50" else None,
                    note="bare: a one-op job, create_run + launch_run -> op, Dagster's launcher"
                    if key == "fast" and q == "p50" else None,
                ))  # fmt: skip
    if p("floor") is not None:
        figures.append(figure(
            "bare job launch -> op on Baton's warm launcher, p50", p("floor") or 0.0, "s",
            store="sqlite", bare=dagster_floor, note="the same job on Dagster's own launcher",
        ))  # fmt: skip
    one, many = p("runstart_1"), p(f"runstart_{args.definitions}")
    if one is not None:
        figures.append(figure("run start: POST /runs -> first step, 1 definition, p50", one, "s",
                              store="sqlite"))  # fmt: skip
    if many is not None:
        figures.append(figure(
            f"run start: POST /runs -> first step, {args.definitions} definitions, p50", many,
            "s", store="sqlite", ratio=summary.get("ratio"), target=f"<= {TARGETS['ratio']}",
            note=f"ratio: library of {args.definitions} vs of 1 (not vs bare Dagster)",
        ))  # fmt: skip
    write_json(path, "resume_latency", figures)


def _measure(base: Path, parts: set[str], args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if parts & {"fast", "sensor", "floor"}:
        with deployment(base, "shipped", sensor_interval=args.sensor_interval) as dep:
            if "fast" in parts:
                results["fast"] = decide_series(dep, args.decisions, args.stagger, fast=True)
            if "sensor" in parts:
                began = time.time()
                results["sensor"] = decide_series(dep, args.decisions, args.stagger, fast=False)
                results["sensor_ticks"] = sensor_ticks(dep, began, time.time())
            if "floor" in parts:
                results["floor"] = floor_series(dep, args.decisions)
                results["floor_default"] = floor_series(dep, args.decisions, default=True)
    if "runstart" in parts:
        results["runstart"] = runstart_series(base, args.definitions, args.steps, args.launches)
    return results


if __name__ == "__main__":
    sys.exit(main())
