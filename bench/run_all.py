"""The benchmark suite (``make bench``): every bench script, one table, one JSON.

Each bench runs as a subprocess of its own with ``--json`` into a results folder (default
``bench/results/<UTC timestamp>/``: ``<bench>.json``, ``<bench>.out``, ``<bench>.err``). Then
one table is printed (bench, figure, store, Baton, the bare Dagster twin, ratio, target, met)
and the merged JSON is written to ``bench/results/latest.json`` (and into the folder).

A bench that fails (exit status, or no figures in the suite's JSON contract) shows as failed
with the tail of its stderr; the others still run and the command exits 1 at the end. A bench
whose script is not in ``bench/`` shows as missing (exit 1 too, unless ``--allow-missing``).

A target reads ``<= X`` (the ratio when the figure has a bare twin, else the Baton figure) or
``<= X <unit>`` (the Baton figure, in its unit).

    .venv/bin/python bench/run_all.py [--only a,b] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import LOAD_ENV, machine, machine_line  # noqa: E402  (bench/ is not a package)

RESULTS = HERE / "results"


@dataclass(frozen=True)
class Bench:
    """A bench script and its smaller options for ``--quick`` (a smoke check, not figures)."""

    name: str
    quick: tuple[str, ...] = ()
    full: tuple[str, ...] = ()
    default: bool = True  # in the suite unless --only names it

    @property
    def script(self) -> Path:
        return HERE / f"{self.name}.py"


BENCHES: tuple[Bench, ...] = (
    Bench("step_overhead", quick=("--rounds", "1", "--steps", "5")),
    Bench("executors", quick=("--steps", "2", "--delay", "0.5", "--shapes", "parallel")),
    Bench(
        "code_location_load",
        quick=("--definitions", "20", "--repeats", "1", "--worker-repeats", "1"),
    ),
    Bench("segment_start", quick=("--runs", "3")),
    Bench(
        "resume_latency",
        quick=("--decisions", "3", "--launches", "3", "--definitions", "20", "--stagger", "0.5"),
    ),
    Bench("webhook_latency", quick=("--deliveries", "3")),
    Bench("throughput", quick=("--runs", "5", "--steps", "5")),
    Bench("sse_latency", quick=("--events", "5")),
    # Superseded by resume_latency's figures (its sensor path); run it with --only.
    Bench("approval_latency", quick=("--intervals", "1", "--decisions", "3"), default=False),
    Bench("celery_steps", quick=("--rounds", "1", "--steps", "3"), default=False),
)

COLUMNS = ("bench", "figure", "store", "Baton", "bare", "ratio", "target", "met")


@dataclass
class Outcome:
    """What one bench gave: its figures, or why there are none."""

    bench: str
    status: str  # ok, failed, missing
    seconds: float = 0.0
    figures: list[dict[str, Any]] = field(default_factory=list)
    machine: dict[str, Any] | None = None
    error: str | None = None


def _accepted(script: Path, options: tuple[str, ...]) -> list[str]:
    """Those of ``options`` the script's ``--help`` names (a bench may lack a small option)."""
    if not options:
        return []
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False
    )
    kept: list[str] = []
    i = 0
    while i < len(options):
        flag = options[i]
        value = (
            [options[i + 1]] if i + 1 < len(options) and not options[i + 1].startswith("--") else []
        )
        if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", done.stdout):
            kept += [flag, *value]
        i += 1 + len(value)
    return kept


def run_one(bench: Bench, out: Path, quick: bool, timeout: float) -> Outcome:
    """Run one bench script into ``out`` and read its figures back."""
    if not bench.script.exists():
        return Outcome(bench.name, "missing", error=f"{bench.script.name} is not in bench/")
    target = out / f"{bench.name}.json"
    extra = _accepted(bench.script, bench.quick) if quick else list(bench.full)
    argv = [sys.executable, str(bench.script), "--json", str(target), *extra]
    began = time.monotonic()
    with (
        (out / f"{bench.name}.out").open("w") as stdout,
        (out / f"{bench.name}.err").open("w") as stderr,
    ):
        stdout.write(f"$ {' '.join(argv)}\n")
        stdout.flush()
        try:
            env = {**os.environ, LOAD_ENV: json.dumps(list(os.getloadavg()))}
            code = subprocess.run(
                argv,
                stdout=stdout,
                stderr=stderr,
                cwd=HERE.parent,
                env=env,
                timeout=timeout,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.monotonic() - began
    tail = _tail(out / f"{bench.name}.err")
    if code is None:
        return Outcome(
            bench.name, "failed", seconds, error=f"timed out after {timeout:.0f} s\n{tail}"
        )
    if code != 0:
        return Outcome(bench.name, "failed", seconds, error=f"exit status {code}\n{tail}")
    return read_result(bench.name, target, seconds)


def read_result(name: str, path: Path, seconds: float = 0.0) -> Outcome:
    """A bench's JSON file as an outcome; failed when absent or not in the suite's contract."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return Outcome(name, "failed", seconds, error=f"no JSON at {path}: {error}")
    figures = payload.get("figures") if isinstance(payload, dict) else None
    if not isinstance(figures, list) or not figures:
        return Outcome(
            name, "failed", seconds, error=f"{path.name}: no 'figures' list (the suite's contract)"
        )
    return Outcome(name, "ok", seconds, figures=figures, machine=payload.get("machine"))


def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def met(item: dict[str, Any]) -> str:
    """Whether a figure meets its target: yes, NO, or '-' when none or not readable."""
    target = item.get("target")
    if not target:
        return "-"
    found = re.fullmatch(r"\s*(<=|>=)\s*([0-9.]+)\s*(\S+)?\s*", str(target))
    if not found:
        return "-"
    op, bound, unit = found.group(1), float(found.group(2)), found.group(3)
    value = item.get("baton") if unit or item.get("ratio") is None else item.get("ratio")
    if value is None:
        return "-"
    ok = value <= bound if op == "<=" else value >= bound
    return "yes" if ok else "NO"


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    number = float(value)
    text = f"{number:.3f}" if abs(number) < 100 else f"{number:.1f}"
    return f"{text} {unit}".strip()


def rows(outcomes: list[Outcome]) -> list[tuple[str, ...]]:
    """The table's rows: a figure each, or one row for a bench that failed or is missing."""
    table: list[tuple[str, ...]] = []
    for outcome in outcomes:
        if outcome.status != "ok":
            first = (outcome.error or "").splitlines()[0] if outcome.error else ""
            table.append((outcome.bench, outcome.status.upper(), "-", "-", "-", "-", "-", first))
            continue
        for item in outcome.figures:
            unit = str(item.get("unit") or "")
            table.append(
                (
                    outcome.bench,
                    str(item.get("name")),
                    str(item.get("store") or "-"),
                    _num(item.get("baton"), unit),
                    _num(item.get("bare"), unit),
                    "-" if item.get("ratio") is None else f"{float(item['ratio']):.2f}",
                    str(item.get("target") or "-"),
                    met(item),
                )
            )
    return table


def render(outcomes: list[Outcome]) -> str:
    """The suite's one table (Markdown, so it pastes into docs/performance.md)."""
    body = rows(outcomes)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in body]
    return "\n".join(lines)


def merged(outcomes: list[Outcome], args: dict[str, Any]) -> dict[str, Any]:
    """The merged JSON: the runner's machine, each bench's status, time and figures."""
    return {
        "suite": "baton",
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": args,
        "machine": machine(),
        "benches": [
            {
                "bench": o.bench,
                "status": o.status,
                "seconds": round(o.seconds, 1),
                "machine": o.machine,
                "error": o.error,
                "figures": o.figures,
            }
            for o in outcomes
        ],
    }


def select(only: str | None) -> list[Bench]:
    """The benches to run: the default suite, or those ``--only`` names (in the suite's order)."""
    if not only:
        return [b for b in BENCHES if b.default]
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    known = {b.name for b in BENCHES}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(
            f"--only: unknown bench(es) {', '.join(unknown)}; expected some of "
            f"{', '.join(b.name for b in BENCHES)}"
        )
    return [b for b in BENCHES if b.name in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma list of benches (default: the whole suite)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--out", type=Path, help="results folder (bench/results/<timestamp>/)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per bench")
    parser.add_argument("--allow-missing", action="store_true", help="missing is not a failure")
    args = parser.parse_args(argv)
    benches = select(args.only)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / stamp
    out.mkdir(parents=True, exist_ok=True)
    sys.stdout.write(f"machine: {machine_line()}\nresults: {out}\n")
    outcomes: list[Outcome] = []
    for bench in benches:
        sys.stdout.write(f"- {bench.name} ...")
        sys.stdout.flush()
        outcome = run_one(bench, out, args.quick, args.timeout)
        sys.stdout.write(f" {outcome.status} ({outcome.seconds:.0f} s)\n")
        outcomes.append(outcome)
    sys.stdout.write("\n" + render(outcomes) + "\n")
    for outcome in outcomes:
        if outcome.status == "failed" and outcome.error:
            sys.stdout.write(f"\n{outcome.bench} failed:\n{outcome.error}\n")
    sys.stdout.write(f"\nmachine at the end: {machine_line()}\n")
    payload = json.dumps(merged(outcomes, {k: str(v) for k, v in vars(args).items()}), indent=1)
    (out / "suite.json").write_text(payload + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(payload + "\n")
    sys.stdout.write(f"JSON: {out / 'suite.json'} and {RESULTS / 'latest.json'}\n")
    bad = [
        o
        for o in outcomes
        if o.status == "failed" or (o.status == "missing" and not args.allow_missing)
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
