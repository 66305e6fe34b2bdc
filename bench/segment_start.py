"""Run start: ``instance.launch_run`` -> the first op's code starting, per run launcher.

On one Dagster instance (a temp DAGSTER_HOME, SQLite storage) it launches N runs (default 20)
of each job with Dagster's DefaultRunLauncher and with Baton's WarmRunLauncher, one at a time,
and prints p50/p95 of:

- ``return``: how long ``launch_run`` blocks the launching process;
- ``first op``: launch -> the first op's code starting (for the bare job, ``time.time()`` taken
  inside the op; for Baton's job, the first step's STEP_START event);
- for Baton's ``hello``, also launch -> its first agent step's STEP_START (``hello__greet``).

The bare job is a one-op Dagster job in this file (in-process executor, as Baton's jobs use);
``hello`` runs in Baton's code location with the shipped library. Each launcher gets one
unmeasured warm-up launch first (for the warm launcher that one starts the zygote; its time is
printed apart). Source edits during the bench restart the zygote; restarts are counted.

    .venv/bin/python bench/segment_start.py [--runs 20] [--json out.json]
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import Definitions, OpExecutionContext, in_process_executor, job, op

ROOT = Path(__file__).resolve().parent.parent
WARM = {"module": "baton.warm_launcher", "class": "WarmRunLauncher"}


@op
def first(context: OpExecutionContext) -> None:
    out = Path(os.environ["SEGMENT_BENCH_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    (out / context.run_id).write_text(repr(time.time()))


@job(executor_def=in_process_executor)
def bare_job() -> None:
    first()


defs = Definitions(jobs=[bare_job])


def _setup() -> Path:
    base = Path(tempfile.mkdtemp(prefix="baton-segstart-"))
    os.environ["BATON_DATA_DIR"] = str(base / "data")
    os.environ["DAGSTER_HOME"] = str(base / "dagster")
    os.environ["SEGMENT_BENCH_OUT"] = str(base / "out")
    (base / "dagster").mkdir(parents=True)
    (base / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return base


@contextmanager
def _workspace(instance: Any, target: Any) -> Iterator[Any]:
    from dagster._core.workspace.context import WorkspaceProcessContext

    from baton.launch import children_output_to

    log = Path(os.environ["BATON_DATA_DIR"]) / "logs" / "bench.log"
    with children_output_to(log), WorkspaceProcessContext(instance, target) as process:
        yield process.create_request_context()


def _create_run(instance: Any, ws: Any, location: str, job_name: str, config: dict) -> str:
    code_location = ws.get_code_location(location)
    repo = next(iter(code_location.get_repositories().values()))
    remote = repo.get_full_job(job_name)
    from baton.launch import create_run_of

    return create_run_of(instance, code_location, repo, remote, config, {}).run_id


def _step_starts(instance: Any, run_id: str) -> dict[str, float]:
    from dagster import DagsterEventType

    entries = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
    return {entry.step_key: entry.timestamp for entry in entries}


def _one(instance: Any, ws: Any, location: str, job_name: str, config: dict) -> dict[str, float]:
    run_id = _create_run(instance, ws, location, job_name, config)
    started = time.time()
    instance.launch_run(run_id, ws)
    returned = time.time()
    deadline = time.monotonic() + 120
    while not instance.get_run_by_id(run_id).is_finished:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} did not finish")
        time.sleep(0.02)
    status = instance.get_run_by_id(run_id).status.value
    if status != "SUCCESS":
        raise RuntimeError(f"run {run_id} ended {status}")
    steps = _step_starts(instance, run_id)
    marker = Path(os.environ["SEGMENT_BENCH_OUT"]) / run_id
    first_op = float(marker.read_text()) if marker.exists() else min(steps.values())
    result = {"return": returned - started, "first op": first_op - started}
    if "hello__greet" in steps:
        result["agent step"] = steps["hello__greet"] - started
    return result


def _zygote_pid(home: Path) -> int | None:
    from baton.warm_launcher import client

    answer = client.ping(home)
    return int(answer["pid"]) if answer else None


def _series(
    instance: Any, ws: Any, location: str, job_name: str, config: dict, runs: int
) -> tuple[dict[str, list[float]], dict[str, float], int]:
    home = Path(instance.root_directory)
    warmup = _one(instance, ws, location, job_name, config)
    samples: dict[str, list[float]] = {}
    restarts = 0
    for _ in range(runs):
        before = _zygote_pid(home)
        for key, value in _one(instance, ws, location, job_name, config).items():
            samples.setdefault(key, []).append(value)
        after = _zygote_pid(home)
        restarts += int(before is not None and after != before)
    return samples, warmup, restarts


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures here (make bench)")
    args = parser.parse_args()
    base = _setup()
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.workspace.load_target import ModuleTarget, PythonFileTarget

    from baton.warm_launcher import client

    home = Path(os.environ["DAGSTER_HOME"])
    targets = {
        "bare": PythonFileTarget(
            python_file=__file__,
            attribute="defs",
            working_directory=str(ROOT),
            location_name="bare",
        ),
        "hello": ModuleTarget(
            module_name="orchestration_defs.definitions",
            attribute="defs",
            working_directory=str(ROOT),
            location_name="baton",
        ),
    }
    jobs = {
        "bare": ("bare_job", {}),
        "hello": ("hello", {"inputs": {"name": "Ada"}, "baton_run_id": ""}),
    }
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    notes: list[str] = []
    try:
        for launcher, overrides in (("default", {}), ("warm", {"run_launcher": WARM})):
            instance = DagsterInstance.from_ref(
                InstanceRef.from_dir(str(home), overrides=overrides)
            )
            with instance:
                for name, target in targets.items():
                    job_name, config = jobs[name]
                    with _workspace(instance, target) as ws:
                        samples, warmup, restarts = _series(
                            instance, ws, target.location_name, job_name, config, args.runs
                        )
                    results[(name, launcher)] = samples
                    notes.append(
                        f"{name}/{launcher}: warm-up launch first op {warmup['first op']:.3f} s"
                        + (
                            f", zygote restarts during the series: {restarts}"
                            if launcher == "warm"
                            else ""
                        )
                    )
    finally:
        client.stop(home)
    _report(results, notes, args.runs, base)
    if args.json:
        _write_figures(args.json, results, args.runs)
    return 0


def _write_figures(
    path: Path, results: dict[tuple[str, str], dict[str, list[float]]], runs: int
) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from common import figure, write_json

    def p50(name: str, launcher: str, measure: str) -> float:
        return statistics.median(results[(name, launcher)][measure])

    floor = p50("bare", "default", "first op")
    note = f"{runs} launches each, SQLite; bare: a one-op job on Dagster's DefaultRunLauncher"
    write_json(path, "segment_start", [
        figure("launch_run -> first op, Baton hello, warm launcher, p50",
               p50("hello", "warm", "first op"), "s", bare=floor, store="sqlite", note=note),
        figure("launch_run -> first agent step, Baton hello, warm launcher, p50",
               p50("hello", "warm", "agent step"), "s", bare=floor, store="sqlite"),
        figure("launch_run -> first op, bare job, warm launcher, p50",
               p50("bare", "warm", "first op"), "s", bare=floor, store="sqlite",
               note="Baton's launcher serving a bare job, vs Dagster's own launcher"),
    ])  # fmt: skip


def _report(
    results: dict[tuple[str, str], dict[str, list[float]]], notes: list[str], runs: int, base: Path
) -> None:
    out = sys.stdout
    out.write(
        f"# Segment start: launch_run -> first op, {runs} runs each, one instance (SQLite)\n"
        f"# machine: {os.cpu_count()} cores, {platform.machine()},"
        f" Python {platform.python_version()}, {_memory()};"
        f" load average at the end {os.getloadavg()[0]:.1f}; data in {base}\n\n"
    )
    out.write("| job | launcher | measure | p50 s | p95 s |\n|---|---|---|---|---|\n")
    for (name, launcher), samples in results.items():
        for measure, values in samples.items():
            out.write(
                f"| {name} | {launcher} | {measure} | {statistics.median(values):.3f} |"
                f" {_pct(values, 0.95):.3f} |\n"
            )
    out.write("\n")
    for name in ("bare", "hello"):
        default, warm = results[(name, "default")], results[(name, "warm")]
        for measure in default:
            ratio = statistics.median(warm[measure]) / statistics.median(default[measure])
            out.write(f"ratio warm/default, {name}, {measure} (p50): {ratio:.2f}\n")
    floor = statistics.median(results[("bare", "default")]["first op"])
    for launcher in ("default", "warm"):
        agent = statistics.median(results[("hello", launcher)]["agent step"])
        out.write(
            f"ratio hello agent step ({launcher}) / bare default first op (p50):"
            f" {agent / floor:.2f}\n"
        )
    out.write("\n" + "\n".join(f"# {note}" for note in notes) + "\n")


def _memory() -> str:
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return "memory unknown"
    return f"{kib / 1024 / 1024:.0f} GiB"


if __name__ == "__main__":
    sys.exit(main())
