"""Code location cost: Baton's lazy location vs bare Dagster, and a run worker's cost.

Every figure comes from a fresh Python process (the way a code server or a run worker
starts), after ``import dagster`` (paid alike by both sides and by every Dagster process), so
each side pays for what it does on top of Dagster:

1. **load + snapshot** of the code location with N generated definitions of S steps (what a
   code server does when the webserver or daemon loads or reloads it: migrate check, library
   sync, build every job, ``RepositorySnap``) vs N hand-built bare Dagster jobs of the same
   shape (start op, S ops in a chain, finish op) in a ``Definitions``, snapshotted the same way.
   Baton's figure is given for a first load (empty tables) and a reload (tables in sync).
2. **run worker**: what ``dagster api execute_run`` does to get its job (import the location
   module, reconstruct the repository, build the one job it runs), with 1 and with N
   definitions in the library.

    .venv/bin/python bench/code_location_load.py                  # N=500, S=10
    .venv/bin/python bench/code_location_load.py --definitions 100 --repeats 1 --worker-repeats 3
    .venv/bin/python bench/code_location_load.py --json out.json   # also the suite's figures
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def definition_yaml(index: int, steps: int) -> str:
    """One generated orchestration: ``steps`` echo steps in a chain."""
    lines = [
        f"slug: gen-{index:04d}",
        f"name: Generated {index}",
        "version: 1",
        "inputs:",
        "  topic: {type: string, required: true}",
        "steps:",
    ]
    for step in range(steps):
        source = "inputs.topic" if step == 0 else f"steps.s{step - 1}.output.text"
        lines += [f"  - id: s{step}", "    agent: echo", "    with:"]
        lines.append(f'      text: "{{{{ {source} }}}}"')
    lines += ["outputs:", f'  text: "{{{{ steps.s{steps - 1}.output.text }}}}"']
    return "\n".join(lines) + "\n"


def write_library(folder: Path, count: int, steps: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"gen-{index:04d}.yaml").write_text(definition_yaml(index, steps))
    return folder


# children: each runs in its own process and prints its seconds as JSON ----------------------


SYNC_SECONDS: list[float] = []


def child_baton_load() -> float:
    start = time.perf_counter()
    from dagster._core.remote_representation.external_data import RepositorySnap

    from orchestration_defs import definitions

    sync = definitions.sync_library

    def timed_sync(settings):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        try:
            return sync(settings)
        finally:
            SYNC_SECONDS.append(time.perf_counter() - began)

    definitions.sync_library = timed_sync  # type: ignore[assignment]
    repository = definitions.build_definitions()
    RepositorySnap.from_def(repository)
    return time.perf_counter() - start


def child_bare_load(count: int, steps: int) -> float:
    start = time.perf_counter()
    from dagster import Definitions, In, Nothing, Out, in_process_executor, job, op
    from dagster._core.remote_representation.external_data import RepositorySnap

    def bare_job(index: int):  # type: ignore[no-untyped-def]
        name = f"gen_{index:04d}"

        @op(name=f"{name}__start", config_schema={"topic": str}, out=Out(dict))
        def start_op(context):  # type: ignore[no-untyped-def]
            return dict(context.op_config)

        step_ops = []
        for step in range(steps):
            ins = {"baton": In(dict)}
            if step:
                ins["previous"] = In(dict)

            @op(name=f"{name}__s{step}", ins=ins, out=Out(dict))
            def step_op(baton, previous=None):  # type: ignore[no-untyped-def]
                return previous or baton

            step_ops.append(step_op)

        @op(name=f"{name}__finish", ins={"last": In(dict), "baton": In(dict)}, out=Out(Nothing))
        def finish_op(baton, last):  # type: ignore[no-untyped-def]
            return None

        @job(name=name, executor_def=in_process_executor)
        def the_job():  # type: ignore[no-untyped-def]
            baton = start_op()
            previous = None
            for step_op in step_ops:
                previous = step_op(baton, previous) if previous is not None else step_op(baton)
            finish_op(baton, previous)

        return the_job

    defs = Definitions(jobs=[bare_job(i) for i in range(count)])
    RepositorySnap.from_def(defs.get_repository_def())
    return time.perf_counter() - start


def child_run_worker(job_name: str) -> float:
    start = time.perf_counter()
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module(
        "orchestration_defs.definitions", "defs", working_directory=str(ROOT)
    )
    job = repository.get_reconstructable_job(job_name).get_definition()
    assert job.name == job_name
    return time.perf_counter() - start


def _child(args: argparse.Namespace) -> None:
    import dagster  # noqa: F401  (paid by every Dagster process alike; not measured)

    if args.child == "baton-load":
        seconds = child_baton_load()
    elif args.child == "bare-load":
        seconds = child_bare_load(args.definitions, args.steps)
    else:
        seconds = child_run_worker(args.job)
    sync = SYNC_SECONDS[0] if SYNC_SECONDS else 0.0
    sys.stdout.write(json.dumps({"seconds": seconds, "sync": sync}) + "\n")


# the parent ------------------------------------------------------------------------------


def _run_child_full(mode: str, env: dict[str, str], *extra: str) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", mode, *extra]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _run_child(mode: str, env: dict[str, str], *extra: str) -> float:
    return _run_child_full(mode, env, *extra)["seconds"]


def _env(data: Path, library: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
    env.update(
        BATON_DATA_DIR=str(data),
        BATON_LIBRARY_DIR=str(library),
        DAGSTER_HOME=str(data / "dagster"),
        DAGSTER_DISABLE_TELEMETRY="1",
    )
    (data / "dagster").mkdir(parents=True, exist_ok=True)
    return env


def _median(mode: str, env: dict[str, str], repeats: int, *extra: str) -> float:
    return statistics.median(_run_child(mode, env, *extra) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--definitions", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="loads of each side")
    parser.add_argument("--worker-repeats", type=int, default=9, help="run workers of each size")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here (make bench)")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    n, s, r = args.definitions, args.steps, args.repeats
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        root = Path(tmp)
        big = _env(root / "big", write_library(root / "lib-big", n, s))
        small = _env(root / "small", write_library(root / "lib-small", 1, s))
        first = _run_child("baton-load", big)  # empty tables: migrate, store N definitions
        # Baton and bare Dagster alternate, so a neighbour's load on the machine hits both.
        loads: list[dict[str, float]] = []
        bares: list[float] = []
        for _ in range(r):
            loads.append(_run_child_full("baton-load", big))
            bares.append(_run_child("bare-load", big, "--definitions", str(n), "--steps", str(s)))
        baton = statistics.median(x["seconds"] for x in loads)
        sync = statistics.median(x["sync"] for x in loads)
        bare = statistics.median(bares)
        _run_child("baton-load", small)  # the small library's tables are synced too
        ones: list[float] = []
        manys: list[float] = []
        for _ in range(args.worker_repeats):
            ones.append(_run_child("run-worker", small, "--job", "gen_0000"))
            manys.append(_run_child("run-worker", big, "--job", f"gen_{n - 1:04d}"))
        one, many = statistics.median(ones), statistics.median(manys)
    rows = [
        ("code location load + snapshot, first load (empty tables)", f"{first:.2f} s"),
        ("code location load + snapshot, reload (tables in sync)", f"{baton:.2f} s"),
        ("  of which the library sync (parse, validate, store)", f"{sync:.2f} s"),
        (f"bare Dagster, {n} equivalent jobs, build + snapshot", f"{bare:.2f} s"),
        ("ratio Baton reload / bare Dagster", f"{baton / bare:.2f}"),
        ("run worker gets its job, 1 definition (median, best)", _ms(one, min(ones))),
        (f"run worker gets its job, {n} definitions (median, best)", _ms(many, min(manys))),
        (f"ratio {n} / 1 (median, best)", f"{many / one:.2f}, {min(manys) / min(ones):.2f}"),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"library: {n} definitions of {s} steps; medians of fresh processes, sides alternating")
    for label, value in rows:
        print(f"{label:<62} {value}")
    if args.json:
        _write_figures(args.json, n, s, first=first, reload=baton, bare=bare, one=one, many=many)


def _write_figures(path: Path, n: int, s: int, **seconds: float) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from common import figure, write_json

    write_json(path, "code_location_load", [
        figure(f"load + snapshot, {n} definitions of {s} steps (reload)", seconds["reload"], "s",
               bare=seconds["bare"], target="<= 2",
               note=f"bare: {n} hand-built jobs of the same shape, built + snapshotted"),
        figure(f"load + snapshot, {n} definitions, first load (empty tables)", seconds["first"],
               "s", bare=seconds["bare"]),
        figure(f"run worker gets its job, {n} definitions", seconds["many"] * 1000, "ms",
               bare=seconds["one"] * 1000,
               note="'bare' here is the same worker with a library of 1 definition"),
    ])  # fmt: skip


def _ms(median: float, best: float) -> str:
    return f"{median * 1000:.0f} ms, {best * 1000:.0f} ms"


if __name__ == "__main__":
    main()
