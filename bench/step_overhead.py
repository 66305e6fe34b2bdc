"""Step overhead: a 25-step chain of ``echo`` steps vs a 25-op chain of plain Dagster ops.

Both jobs run with the in-process executor on the same Dagster instance (its run, event log
and schedule storage), in the same process, interleaved round by round, so the ratio holds on
a noisy machine. Baton's side is a generated orchestration (``bench/code_location_load.py``'s
generator) in a library folder, loaded the way a code server does (``build_definitions``:
migrate, library sync, build); the bare side is start op -> 25 ops -> finish op passing dicts.

On SQLite (Dagster's default storage in a temp ``DAGSTER_HOME``, Baton's tables in a SQLite
file) and on Postgres (dagster-postgres and Baton's tables in two throwaway databases created
on the server at ``--pg-admin`` and dropped afterwards). For each store it prints the medians,
the per-step overhead ``(Baton - bare) / steps`` in ms, the ratio, and what a step writes:
Baton's commits and SQL statements (counted by SQLAlchemy event listeners on Baton's engine)
and Dagster's event-log rows, per step.

    .venv/bin/python bench/step_overhead.py [--rounds 9] [--stores sqlite,postgres] [--json F]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.code_location_load import definition_yaml  # noqa: E402
from bench.common import figure, machine_line, write_json  # noqa: E402

PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@dataclass
class StoreResult:
    """The figures of one store."""

    store: str
    steps: int
    rounds: int
    baton_s: list[float] = field(default_factory=list)
    bare_s: list[float] = field(default_factory=list)
    commits_per_step: float = 0.0
    statements_per_step: float = 0.0
    baton_events_per_step: float = 0.0
    bare_events_per_step: float = 0.0

    @property
    def baton_median(self) -> float:
        return statistics.median(self.baton_s)

    @property
    def bare_median(self) -> float:
        return statistics.median(self.bare_s)

    @property
    def overhead_ms(self) -> float:
        return (self.baton_median - self.bare_median) / self.steps * 1000

    @property
    def ratio(self) -> float:
        return self.baton_median / self.bare_median

    @property
    def paired_ratio(self) -> float:
        """The median of each round's own ratio (the two sides ran back to back)."""
        return statistics.median(a / b for a, b in zip(self.baton_s, self.bare_s, strict=True))

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "baton_median_s": self.baton_median,
            "bare_median_s": self.bare_median,
            "overhead_ms_per_step": self.overhead_ms,
            "ratio": self.ratio,
            "paired_ratio": self.paired_ratio,
        }


# the bare twin ------------------------------------------------------------------------------


def bare_job(steps: int) -> Any:
    """start -> ``steps`` plain ops in a chain -> finish, in-process, dicts between them."""
    from dagster import (
        DependencyDefinition,
        GraphDefinition,
        In,
        OpDefinition,
        OpExecutionContext,
        Out,
        Output,
        in_process_executor,
    )

    def start_fn(context: OpExecutionContext, _inputs: dict[str, Any]) -> Iterator[Output]:
        yield Output({"inputs": dict(context.op_config)}, "result")

    def step_fn(_context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        previous = inputs.get("previous") or inputs["baton"]["inputs"]
        yield Output({"text": previous.get("text", previous.get("topic"))}, "result")

    def finish_fn(_context: OpExecutionContext, inputs: dict[str, Any]) -> Iterator[Output]:
        yield Output({"text": inputs["previous"]["text"]}, "result")

    start = OpDefinition(
        compute_fn=start_fn,
        name="bare__start",
        config_schema={"topic": str},
        outs={"result": Out(dict)},
    )
    ops = [start]
    deps: dict[str, dict[str, DependencyDefinition]] = {}
    for index in range(steps):
        ins = {"baton": In(dict)} | ({"previous": In(dict)} if index else {})
        ops.append(
            OpDefinition(
                compute_fn=step_fn, name=f"bare__s{index}", ins=ins, outs={"result": Out(dict)}
            )
        )
        deps[f"bare__s{index}"] = {"baton": DependencyDefinition("bare__start")}
        if index:
            deps[f"bare__s{index}"]["previous"] = DependencyDefinition(f"bare__s{index - 1}")
    ops.append(
        OpDefinition(
            compute_fn=finish_fn,
            name="bare__finish",
            ins={"previous": In(dict)},
            outs={"result": Out(dict)},
        )
    )
    deps["bare__finish"] = {"previous": DependencyDefinition(f"bare__s{steps - 1}")}
    graph = GraphDefinition(name="bare_chain", node_defs=ops, dependencies=deps)
    return graph.to_job(name="bare_chain", executor_def=in_process_executor)


# stores -------------------------------------------------------------------------------------


@contextmanager
def _postgres(admin_url: str) -> Iterator[tuple[str, str]]:
    """Two throwaway databases (Dagster's, Baton's) on the server; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    tag = uuid.uuid4().hex[:10]
    names = [f"bench_dagster_{tag}", f"bench_baton_{tag}"]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    urls = [
        make_url(admin_url).set(database=n).render_as_string(hide_password=False) for n in names
    ]
    try:
        yield urls[0], urls[1]
    finally:
        from baton.db.engine import get_engine

        get_engine(urls[1]).dispose()
        get_engine.cache_clear()
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _dagster_yaml(home: Path, dagster_url: str | None) -> None:
    lines = ["telemetry:", "  enabled: false"]
    if dagster_url:
        url = dagster_url.replace("+psycopg2", "")
        lines += ["storage:", "  postgres:", f"    postgres_url: {url}"]
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("\n".join(lines) + "\n")


class Counter:
    """Commits and statements on one SQLAlchemy engine (Baton's), while enabled."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.commits = 0
        self.statements = 0
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "before_cursor_execute", self._statement)

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def _statement(self, *_args: Any) -> None:
        self.statements += 1

    def reset(self) -> None:
        self.commits = self.statements = 0


def measure(store: str, steps: int, rounds: int, admin_url: str) -> StoreResult:
    """Build both jobs on one instance of ``store`` and time them interleaved."""
    base = Path(tempfile.mkdtemp(prefix=f"baton-stepbench-{store}-"))
    if store == "postgres":
        with _postgres(admin_url) as (dagster_url, baton_url):
            return _measure(base, steps, rounds, store, dagster_url, baton_url)
    return _measure(base, steps, rounds, store, None, None)


def _measure(
    base: Path,
    steps: int,
    rounds: int,
    store: str,
    dagster_url: str | None,
    baton_url: str | None,
) -> StoreResult:
    from dagster import DagsterInstance

    from baton.db.engine import get_engine
    from baton.settings import get_settings

    library = base / "library"
    library.mkdir(parents=True)
    (library / "chain.yaml").write_text(definition_yaml(0, steps))
    os.environ["BATON_DATA_DIR"] = str(base / "data")
    os.environ["BATON_LIBRARY_DIR"] = str(library)
    os.environ["DAGSTER_HOME"] = str(base / "dagster")
    if baton_url:
        os.environ["BATON_DATABASE_URL"] = baton_url
    else:
        os.environ.pop("BATON_DATABASE_URL", None)
    get_settings.cache_clear()
    _dagster_yaml(base / "dagster", dagster_url)

    from orchestration_defs.definitions import build_definitions

    baton_job = build_definitions().get_job("gen_0000")
    bare = bare_job(steps)
    counter = Counter(get_engine(get_settings().db_url))
    result = StoreResult(store, steps, rounds)
    with DagsterInstance.from_config(str(base / "dagster")) as instance:

        def run_baton() -> tuple[float, str]:
            began = time.perf_counter()
            done = baton_job.execute_in_process(
                run_config={"inputs": {"topic": "bench"}, "baton_run_id": ""}, instance=instance
            )
            seconds = time.perf_counter() - began
            if not done.success:
                raise RuntimeError(f"Baton's chain failed on {store}")
            return seconds, done.run_id

        def run_bare() -> tuple[float, str]:
            began = time.perf_counter()
            done = bare.execute_in_process(
                run_config={"ops": {"bare__start": {"config": {"topic": "bench"}}}},
                instance=instance,
            )
            return time.perf_counter() - began, done.run_id

        run_baton()  # warm-up: engines, first compile of templates, SQLite files
        run_bare()
        for index in range(rounds):
            # Alternate which side goes first so a burst of load hits both alike.
            order = (run_baton, run_bare) if index % 2 == 0 else (run_bare, run_baton)
            for side in order:
                if side is run_baton:
                    counter.reset()
                seconds, run_id = side()
                events = len(instance.all_logs(run_id))
                if side is run_baton:
                    result.baton_s.append(seconds)
                    result.commits_per_step = counter.commits / steps
                    result.statements_per_step = counter.statements / steps
                    result.baton_events_per_step = events / steps
                else:
                    result.bare_s.append(seconds)
                    result.bare_events_per_step = events / steps
    get_engine(get_settings().db_url).dispose()
    return result


# report -------------------------------------------------------------------------------------


def table(results: list[StoreResult]) -> str:
    rows = [
        "| store | Baton s (median) | bare s (median) | overhead ms/step | ratio | paired ratio "
        "| Baton commits/step | Baton statements/step | Dagster events/step Baton / bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.store} | {r.baton_median:.3f} | {r.bare_median:.3f} | {r.overhead_ms:.1f} "
            f"| {r.ratio:.2f} | {r.paired_ratio:.2f} | {r.commits_per_step:.2f} "
            f"| {r.statements_per_step:.2f} | {r.baton_events_per_step:.2f} / "
            f"{r.bare_events_per_step:.2f} |"
        )
    return "\n".join(rows)


def run(stores: list[str], steps: int, rounds: int, admin_url: str) -> list[StoreResult]:
    return [measure(store, steps, rounds, admin_url) for store in stores]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--pg-admin", default=os.environ.get("BATON_BENCH_PG_URL", PG_ADMIN))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)  # Dagster's per-step log lines are not the point here
    results = run(args.stores.split(","), args.steps, args.rounds, args.pg_admin)
    print(f"machine: {machine_line()}")
    print(f"{args.steps}-step chain, in-process executor, {args.rounds} interleaved rounds")
    print(table(results))
    if args.json:
        figures = [
            figure(
                "step overhead",
                r.baton_median,
                "s",
                bare=r.bare_median,
                store=r.store,
                target="<= 1.3",
                note=(
                    f"{r.steps}-step chain, {r.rounds} rounds, {r.overhead_ms:.1f} ms/step, "
                    f"paired ratio {r.paired_ratio:.2f}, {r.commits_per_step:.2f} commits and "
                    f"{r.statements_per_step:.2f} statements/step, Dagster events/step "
                    f"{r.baton_events_per_step:.2f} vs {r.bare_events_per_step:.2f}"
                ),
            )
            for r in results
        ]
        write_json(args.json, "step_overhead", figures)


if __name__ == "__main__":
    main()
