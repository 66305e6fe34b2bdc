"""Throughput on Postgres: N orchestrations of S steps launched at once vs N bare Dagster jobs.

Both sides on the shipped ``deploy/dagster.postgres.yaml`` (dagster-postgres, the
QueuedRunCoordinator with its ``max_concurrent_runs``, Baton's warm run launcher), Dagster's and
Baton's storage in throwaway databases created on ``--pg-admin`` (127.0.0.1:5432) and dropped
afterwards.

- Baton: ``baton up`` in a temp data folder with a library of N generated ``echo`` chains of S
  steps (``bench/code_location_load.py``'s generator); N ``POST /api/v1/runs`` sent at once
  (10 threads), one per orchestration; done when every run is completed or failed in Baton.
- bare: after Baton's deployment stopped, ``dagster-webserver`` and ``dagster-daemon`` on the
  same instance with a workspace of one bare job (start op -> S ops passing a dict -> finish);
  N GraphQL ``launchRun`` into the same queue, sent the same way; done when every run ended.

Counted: runs that completed, failed, or never ended (lost). Wall time from the first launch
to the last run's end; ratio Baton / bare. Memory: every 0.2 s the bench reads VmRSS in /proc
for the launching server (Baton's API process; Dagster's webserver for bare) and for each run
worker (the children of the warm launcher's zygote), and reports the peaks.

    .venv/bin/python bench/throughput.py [--runs 50] [--steps 25] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from code_location_load import write_library  # noqa: E402
from common import (  # noqa: E402
    PG_ADMIN,
    figure,
    machine_line,
    throwaway_postgres,
    write_json,
)
from resume_latency import _port, _wait, deployment  # noqa: E402

POSTGRES_YAML = ROOT / "deploy" / "dagster.postgres.yaml"
BIN = Path(sys.executable).parent
BARE_MODULE = """
from dagster import Definitions, In, Out, in_process_executor, job, op

STEPS = {steps}


@op(out=Out(dict))
def start() -> dict:
    return {{"text": "bench"}}


def _step(index: int):
    @op(name=f"s{{index}}", ins={{"previous": In(dict)}}, out=Out(dict))
    def body(previous: dict) -> dict:
        return {{"text": previous["text"]}}

    return body


@op(ins={{"last": In(dict)}})
def finish(last: dict) -> None:
    return None


STEP_OPS = [_step(i) for i in range(STEPS)]


@job(executor_def=in_process_executor)
def bare_chain() -> None:
    value = start()
    for step_op in STEP_OPS:
        value = step_op(value)
    finish(value)


defs = Definitions(jobs=[bare_chain])
"""
LAUNCH = """
mutation($p: ExecutionParams!) {
  launchRun(executionParams: $p) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
REPOS = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"


# memory ---------------------------------------------------------------------------------------


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process now."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found[int(entry.name)] = (ppid, cmd)
    return found


def _rss_mib(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def _descendants(root: int, procs: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cmd) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@dataclass(eq=False)  # a thread must stay hashable
class Sampler(threading.Thread):
    """Peak RSS of the server (a process of ``root``'s tree matching ``server``) and of each
    child of the zygote of ``home``, every 0.2 s."""

    root: int
    server: str
    home: Path
    server_peak: float = 0.0
    workers: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    samples: int = 0
    servers: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        from baton.warm_launcher import client

        self.client = client  # imported here: a first import inside the thread took seconds

    def run(self) -> None:
        zygote: int | None = None
        while not self.stop.is_set():
            procs = _processes()
            if zygote is None or zygote not in procs:
                answer = self.client.ping(self.home)
                zygote = int(answer["pid"]) if answer else None
            for pid in {self.root} | _descendants(self.root, procs):
                if pid in procs and self.server in procs[pid][1]:
                    self.servers.add(pid)
                    self.server_peak = max(self.server_peak, _rss_mib(pid) or 0.0)
            if zygote is not None:
                # A worker is a child the zygote forked; what a worker starts is not one.
                for pid, (ppid, _cmd) in procs.items():
                    rss = _rss_mib(pid) if ppid == zygote else None
                    if rss is not None:
                        self.workers[pid] = max(self.workers.get(pid, 0.0), rss)
            self.samples += 1
            time.sleep(0.2)

    @property
    def worker_peak(self) -> float:
        return max(self.workers.values(), default=0.0)


# the two sides --------------------------------------------------------------------------------


@dataclass
class Side:
    """What one side gave."""

    wall: float = 0.0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    refused: int = 0
    server_mib: float = 0.0
    worker_mib: float = 0.0
    workers: int = 0
    samples: int = 0
    servers: int = 0
    errors: list[str] = field(default_factory=list)


def _home(base: Path, name: str) -> Path:
    home = base / name
    home.mkdir(parents=True)
    shutil.copy(POSTGRES_YAML, home / "dagster.yaml")
    return home


def _pg_env(dagster_url: str) -> dict[str, str]:
    from sqlalchemy.engine import make_url

    url = make_url(dagster_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        # Trust auth here; the shipped file reads a password from the environment.
        "DAGSTER_PG_PASSWORD": url.password or "bench",
        "DAGSTER_PG_DB": url.database or "",
    }


def baton_side(
    base: Path, home: Path, urls: dict[str, str], runs: int, steps: int, timeout: float
) -> Side:
    from resume_latency import _store

    from baton.store.runs import RunsRepository

    library = write_library(base / "library", runs, steps)
    extra = {"DAGSTER_HOME": str(home), "BATON_DATABASE_URL": urls["baton"]}
    side = Side()
    with deployment(base, "baton", library, extra_env=extra) as dep:
        assert dep.proc is not None
        store = _store()
        sampler = Sampler(dep.proc.pid, "api serve", home)
        sampler.start()

        def launch(index: int) -> uuid.UUID | None:
            body = {"orchestration": f"gen-{index:04d}", "inputs": {"topic": f"t{index}"}}
            answer = dep.call("operator", "POST", "/api/v1/runs", body)
            if answer.status_code >= 300:
                side.errors.append(f"POST /runs {answer.status_code}: {answer.text[:200]}")
                return None
            return uuid.UUID(answer.json()["run_id"])

        began = time.monotonic()
        with ThreadPoolExecutor(10) as pool:
            ids = [i for i in pool.map(launch, range(runs)) if i is not None]
        side.refused = runs - len(ids)

        def statuses() -> dict[str, int]:
            counts: dict[str, int] = {}
            with store.session() as s:
                repo = RunsRepository(s)
                for run_id in ids:
                    run = repo.get(run_id)
                    status = run.status if run is not None else "missing"
                    counts[status] = counts.get(status, 0) + 1
            return counts

        def ended() -> bool:
            counts = statuses()
            return counts.get("completed", 0) + counts.get("failed", 0) == len(ids)

        with contextlib.suppress(TimeoutError):
            _wait("every Baton run to end", ended, timeout, 0.5)
        side.wall = time.monotonic() - began
        counts = statuses()
        sampler.stop.set()
        sampler.join(5)
    side.completed, side.failed = counts.get("completed", 0), counts.get("failed", 0)
    side.lost = len(ids) - side.completed - side.failed
    side.server_mib, side.worker_mib = sampler.server_peak, sampler.worker_peak
    side.workers, side.samples, side.servers = (
        len(sampler.workers),
        sampler.samples,
        len(sampler.servers),
    )
    return side


@contextlib.contextmanager
def bare_deployment(base: Path, home: Path, env: dict[str, str], steps: int) -> Any:
    folder = base / "bare"
    folder.mkdir()
    (folder / "bare_chain.py").write_text(BARE_MODULE.format(steps=steps))
    (folder / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: bare_chain.py\n"
        "      attribute: defs\n      location_name: bare\n"
        f"      working_directory: {folder}\n"
    )
    port = _port()
    workspace = str(folder / "workspace.yaml")
    log = (folder / "bare.log").open("w")
    procs = [
        subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
            env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ),
        subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", workspace],
            env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            with contextlib.suppress(httpx.HTTPError, KeyError, TypeError, ValueError):
                answer = httpx.post(f"{url}/graphql", json={"query": REPOS}, timeout=30)
                return bool(answer.json()["data"]["repositoriesOrError"]["nodes"])
            return False

        _wait("the bare webserver", up, 600, 1.0)
        yield url, procs[0].pid
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        from baton.warm_launcher import client

        client.stop(home)


def bare_side(
    base: Path, home: Path, env: dict[str, str], runs: int, steps: int, timeout: float
) -> Side:
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    side = Side()
    params = {
        "selector": {
            "repositoryLocationName": "bare",
            "repositoryName": "__repository__",
            "jobName": "bare_chain",
        },
        "runConfigData": {},
    }
    with bare_deployment(base, home, env, steps) as (url, webserver_pid):
        sampler = Sampler(webserver_pid, "dagster-webserver", home)
        sampler.start()

        def launch(_index: int) -> str | None:
            answer = httpx.post(
                f"{url}/graphql", json={"query": LAUNCH, "variables": {"p": params}}, timeout=120
            ).json()
            result = (answer.get("data") or {}).get("launchRun") or {}
            if result.get("__typename") != "LaunchRunSuccess":
                side.errors.append(f"launchRun: {str(answer)[:300]}")
                return None
            return str(result["run"]["runId"])

        began = time.monotonic()
        with ThreadPoolExecutor(10) as pool:
            ids = [i for i in pool.map(launch, range(runs)) if i is not None]
        side.refused = runs - len(ids)
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:

            def statuses() -> dict[str, int]:
                counts: dict[str, int] = {}
                for run_id in ids:
                    run = instance.get_run_by_id(run_id)
                    status = run.status.value if run is not None else "MISSING"
                    counts[status] = counts.get(status, 0) + 1
                return counts

            def ended() -> bool:
                counts = statuses()
                done = sum(counts.get(s, 0) for s in ("SUCCESS", "FAILURE", "CANCELED"))
                return done == len(ids)

            with contextlib.suppress(TimeoutError):
                _wait("every bare run to end", ended, timeout, 0.5)
            side.wall = time.monotonic() - began
            counts = statuses()
        sampler.stop.set()
        sampler.join(5)
    side.completed = counts.get("SUCCESS", 0)
    side.failed = counts.get("FAILURE", 0) + counts.get("CANCELED", 0)
    side.lost = len(ids) - side.completed - side.failed
    side.server_mib, side.worker_mib = sampler.server_peak, sampler.worker_peak
    side.workers, side.samples, side.servers = (
        len(sampler.workers),
        sampler.samples,
        len(sampler.servers),
    )
    return side


# report ---------------------------------------------------------------------------------------


def report(baton: Side, bare: Side, runs: int, steps: int) -> list[dict[str, Any]]:
    def counted(side: Side) -> str:
        return (
            f"{side.completed}/{runs} completed, {side.failed} failed, {side.lost} lost, "
            f"{side.refused} refused at launch"
        )

    print(f"machine: {machine_line()}")
    print(f"{runs} runs of {steps} steps launched at once on Postgres (QueuedRunCoordinator)\n")
    print("| side | runs | wall s | runs/s | server peak MiB | worker peak MiB | workers |")
    print("|---|---|---|---|---|---|---|")
    for name, side in (("Baton", baton), ("bare Dagster", bare)):
        rate = side.completed / side.wall if side.wall else 0.0
        print(f"| {name} | {counted(side)} | {side.wall:.1f} | {rate:.2f} | "
              f"{side.server_mib:.0f} | {side.worker_mib:.0f} | {side.workers} |")  # fmt: skip
    for name, side in (("Baton", baton), ("bare", bare)):
        print(f"{name}: {side.samples} memory samples, {side.servers} server process(es) seen")
        for error in side.errors[:5]:
            print(f"error: {error}")
    complete = baton.completed == runs and bare.completed == runs
    return [
        figure(
            f"{runs} x {steps} steps, all launched at once: wall time", baton.wall, "s",
            bare=bare.wall, store="postgres",
            note=f"Baton {counted(baton)}; bare {counted(bare)}"
            + ("" if complete else " (NOT all complete)"),
        ),
        figure("throughput", baton.completed / baton.wall if baton.wall else 0.0, "runs/s",
               bare=bare.completed / bare.wall if bare.wall else None, store="postgres"),
        figure("peak RSS of the launching server", baton.server_mib, "MiB",
               bare=bare.server_mib or None, store="postgres",
               note="Baton's API process vs Dagster's webserver (bare launches through GraphQL)"),
        figure("peak RSS of one run worker", baton.worker_mib, "MiB",
               bare=bare.worker_mib or None, store="postgres",
               note=f"max over {baton.workers} Baton / {bare.workers} bare workers (forked)"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per side")
    parser.add_argument("--pg-admin", default=os.environ.get("BATON_BENCH_PG_URL", PG_ADMIN))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp data folders")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="baton-throughput-bench-"))
    try:
        with throwaway_postgres(args.pg_admin, "dagster", "baton", "bare") as urls:
            home = _home(base, "dagster-home")
            os.environ.update(_pg_env(urls["dagster"]))  # the instance file reads these
            baton = baton_side(base, home, urls, args.runs, args.steps, args.timeout)
            bare_home = _home(base, "bare-home")
            bare_env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
            bare_env.update(_pg_env(urls["bare"]), DAGSTER_HOME=str(bare_home))
            bare_env.update(BATON_DATA_DIR=str(base / "bare-data"), DAGSTER_DISABLE_TELEMETRY="1")
            os.environ.update(_pg_env(urls["bare"]))
            bare = bare_side(base, bare_home, bare_env, args.runs, args.steps, args.timeout)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    figures = report(baton, bare, args.runs, args.steps)
    if args.json:
        write_json(args.json, "throughput", figures)
    complete = baton.completed == args.runs and bare.completed == args.runs
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
