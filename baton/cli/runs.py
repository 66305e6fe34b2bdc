"""``baton runs list|tree|show`` and the operator actions ``abort``, ``retry``, ``skip``."""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baton.cli import compensation as compensation_cli
from baton.cli.output import audit_summary, dumps, error, run_summary, step_summary
from baton.edge import check_reason, input_limits
from baton.launch import OneShotLauncher
from baton.library import prepare_database
from baton.lifecycle import Launched, Lifecycle, LifecycleError
from baton.lineage import run_tree
from baton.settings import get_settings
from baton.store.audit import AuditRepository
from baton.store.service import RunStore, UnknownRun
from orchestration_defs.language.values import ValueProblem, parse_json


def add_parsers(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="orchestration runs").add_subparsers(
        dest="runs_command", required=True
    )
    p = runs.add_parser("list", help="recent runs, newest first")
    p.add_argument("--status")
    p.add_argument("--orchestration", metavar="SLUG")
    p.add_argument("--root", type=uuid.UUID, metavar="ID", help="a root run and every run below it")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_runs)
    p = runs.add_parser("tree", help="a run and its child runs, with statuses and segments")
    p.add_argument("run_id", type=uuid.UUID, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=show_tree)
    p = runs.add_parser("show", help="one run with its steps, events and Dagster runs")
    p.add_argument("run_id", type=uuid.UUID, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=show_run)
    p = runs.add_parser("abort", help="abort a run that has not ended")
    p.add_argument("run_id", type=uuid.UUID, metavar="ID")
    _operator_arguments(p)
    p.set_defaults(func=abort_run)
    p = runs.add_parser("retry", help="run a failed or orphaned step of a failed run again")
    p.add_argument("run_id", type=uuid.UUID, metavar="ID")
    p.add_argument("step_id", metavar="STEP")
    _operator_arguments(p)
    p.add_argument(
        "--input",
        metavar="JSON|@FILE",
        help="a JSON object replacing the step's rendered input (a new logical call)",
    )
    p.set_defaults(func=step_action, action="retry")
    p = runs.add_parser(
        "skip",
        help="skip a failed or orphaned step of a failed run (it continues), or a pending "
        "step of a run under way",
    )
    p.add_argument("run_id", type=uuid.UUID, metavar="ID")
    p.add_argument("step_id", metavar="STEP")
    _operator_arguments(p)
    p.add_argument(
        "--output", metavar="JSON|@FILE", help="the step's output, for the steps after it"
    )
    p.set_defaults(func=step_action, action="skip")
    compensation_cli.add_parser(runs)


def _operator_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as", dest="user", default=os.environ.get("USER") or "cli")
    p.add_argument("--reason", help="why (kept in the run's audit log)")


def list_runs(args: argparse.Namespace) -> int:
    store = RunStore(get_settings().db_url)
    rows = store.list_runs(
        status=args.status,
        orchestration=args.orchestration,
        root_run_id=args.root,
        limit=args.limit,
    )
    if args.json:
        print(dumps([run_summary(r) for r in rows]))
        return 0
    print(f"{'RUN ID':36}  {'ORCHESTRATION':24}  {'STATUS':18}  CREATED")
    for r in rows:
        created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.id!s:36}  {r.orchestration[:24]:24}  {r.status:18}  {created}")
    return 0


def show_tree(args: argparse.Namespace) -> int:
    try:
        node = run_tree(RunStore(get_settings().db_url), args.run_id, statuses=_statuses)
    except UnknownRun as exc:
        error(str(exc))
        return 1
    if args.json:
        print(dumps(node))
        return 0
    for line in tree_lines(node):
        print(line)
    return 0


def tree_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    """One line per run, indented under its parent, then its segments."""
    place = ""
    if node["parent_step"]:
        index = f"[{node['index']}]" if node["index"] is not None else ""
        place = f"  ({node['parent_step']}{index})"
    took = f"  {node['duration_seconds']:.1f} s" if node["duration_seconds"] is not None else ""
    pad = "  " * depth
    lines = [f"{pad}{node['orchestration']} {node['run_id']}  {node['status']}{took}{place}"]
    lines += [
        f"{pad}    segment {s['dagster_run_id']}  {s['status'] or 'unknown to Dagster'}"
        for s in node["segments"]
    ]
    for child in node["children"]:
        lines += tree_lines(child, depth + 1)
    return lines


def show_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    store = RunStore(settings.db_url)
    try:
        detail = store.run_detail(args.run_id)
    except UnknownRun as exc:
        error(str(exc))
        return 1
    segments = _segments(str(args.run_id))
    with store.session() as session:
        audit = [audit_summary(a) for a in AuditRepository(session).list(args.run_id)]
    body: dict[str, Any] = {
        **run_summary(detail.run),
        "steps": [step_summary(s) for s in detail.steps],
        "segments": segments,
        "children": [str(c.id) for c in detail.children],
        "deliverables": [
            {
                "id": str(d.id),
                "step_id": d.step_id,
                "name": d.name,
                "type": d.type,
                "version": d.version,
                "asset_uri": d.asset_uri,
                "mime_type": d.mime_type,
                "size_bytes": d.size_bytes,
            }
            for d in store.deliverables(args.run_id)
        ],
        "events": [
            {"sequence": e.sequence, "type": e.type, "payload": e.payload, "at": e.created_at}
            for e in detail.events
        ],
        "audit": audit,
        "compensation": compensation_cli.compensation_summary(store, detail.run),
    }
    if args.json:
        print(dumps(body))
        return 0
    run = detail.run
    print(f"run {run.id}  {run.orchestration} v{run.version}  status: {run.status}")
    print(f"inputs: {dumps(run.inputs, indent=None)}")
    if run.outputs is not None:
        print(f"outputs: {dumps(run.outputs, indent=None)}")
    if run.error:
        print(f"error: {dumps(run.error, indent=None)}")
    print("steps:")
    for s in detail.steps:
        extra = f"  error: {s.error.get('message') or s.error.get('reason')}" if s.error else ""
        cached = f"  cache: {s.cache}" if s.cache else ""
        print(f"  {s.step_id:24} {s.status:10} attempts: {s.attempt}{cached}{extra}")
    for line in compensation_cli.compensation_lines(body["compensation"]):
        print(line)
    if body["deliverables"]:
        print("deliverables:")
        for d in body["deliverables"]:
            where = d["asset_uri"] or "(inline)"
            print(f"  {d['step_id']:24} {d['name']} v{d['version']} ({d['type']})  {where}")
    if audit:
        print("operator actions (audit log), oldest first:")
        for entry in audit:
            print(_audit_line(entry))
    print("events:")
    for e in detail.events:
        print(_event_line(e.sequence, e.created_at, e.type, e.payload or {}))
    print("Dagster runs (segments), oldest first:")
    ui = settings.dagster.ui_url.rstrip("/")
    for seg in segments:
        print(f"  {seg['dagster_run_id']}  {seg['status']:9}  {ui}/runs/{seg['dagster_run_id']}")
    return 0


# What an event line of `runs show` names, in this order; payloads are masked by the store.
_EVENT_FIELDS = (
    ("step_id", "step"),
    ("attempt", "attempt"),
    ("approval_id", "approval"),
    ("decision", "decision"),
    ("decided_by", "by"),
    ("created_by", "by"),
    ("votes", "votes"),
    ("required", "of"),
    ("to", "to"),
    ("dagster_run_id", "dagster run"),
    ("will_retry", "will retry"),
)
_EVENT_TEXTS = ("reason", "message")
_TEXT_WIDTH = 100


def _event_line(sequence: int, at: datetime, type_: str, payload: dict[str, Any]) -> str:
    """One compact line: sequence, time, type and what the payload is about."""
    parts = [f"{label} {payload[key]}" for key, label in _EVENT_FIELDS if _shown(payload, key)]
    for key in _EVENT_TEXTS:
        if _shown(payload, key):
            parts.append(f"{key}: {_cut(payload[key])}")
    when = at.strftime("%Y-%m-%d %H:%M:%S")
    return f"  {sequence:>6}  {when}  {type_:24} {', '.join(parts)}".rstrip()


def _audit_line(entry: dict[str, Any]) -> str:
    """Who did (or tried) what, through what, in which state, why, and how it went."""
    what = entry["action"] + (f" {entry['step_id']}" if entry["step_id"] else "")
    state = f"run {entry['run_status']}" + (
        f", step {entry['step_status']}" if entry["step_status"] else ""
    )
    parts = [f"by {entry['by']} via {entry['via']}", f"({state})", entry["outcome"]]
    if entry["details"]:
        parts.append(f"with {_cut(dumps(entry['details'], indent=None))}")
    parts += [f"{key}: {_cut(entry[key])}" for key in ("reason", "message") if entry[key]]
    when = entry["at"].strftime("%Y-%m-%d %H:%M:%S%z")
    return f"  {when}  {what:24} {'  '.join(parts)}"


def _cut(value: object) -> str:
    """One line however long the text: newlines collapsed, cut at a readable width."""
    text = " ".join(str(value).split())
    return text if len(text) <= _TEXT_WIDTH else text[: _TEXT_WIDTH - 3] + "..."


def _shown(payload: dict[str, Any], key: str) -> bool:
    return payload.get(key) not in (None, "", [], {})


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


def _segments(run_id: str) -> list[dict[str, Any]]:
    """The Dagster runs tagged with this orchestration run, oldest first."""
    from dagster import DagsterInstance, RunsFilter

    from baton.dagster_home import ensure_dagster_home

    ensure_dagster_home(get_settings())
    with DagsterInstance.get() as instance:
        records = instance.get_run_records(RunsFilter(tags={"baton/run_id": run_id}))
    return [
        {
            "dagster_run_id": r.dagster_run.run_id,
            "status": r.dagster_run.status.value,
            "started_at": _iso(r.start_time),
            "finished_at": _iso(r.end_time),
            "parent_run_id": r.dagster_run.parent_run_id,
        }
        for r in sorted(records, key=lambda rec: rec.create_timestamp)
    ]


def _statuses(dagster_run_ids: Sequence[str]) -> dict[str, str]:
    """Dagster's status of each segment, from this deployment's instance."""
    from dagster import DagsterInstance

    from baton.dagster_home import ensure_dagster_home
    from baton.segment_status import segment_statuses

    ensure_dagster_home(get_settings())
    with DagsterInstance.get() as instance:
        return segment_statuses(instance, dagster_run_ids)


def _lifecycle() -> Lifecycle:
    settings = get_settings()
    prepare_database(settings)
    return Lifecycle(RunStore(settings.db_url), OneShotLauncher(settings), via="cli")


def abort_run(args: argparse.Namespace) -> int:
    """The same abort as the API's: open approvals cancelled, running steps cancelled, the
    children aborted, the Dagster run canceled; audited with ``--reason``."""
    try:
        reason = check_reason(args.reason)
    except ValueProblem as exc:
        error(str(exc))  # an argument that cannot be read: nothing was asked
        return 2
    lifecycle = _lifecycle()
    try:
        run = lifecycle.abort(args.run_id, by=args.user, reason=reason)
    except LifecycleError as exc:
        error(str(exc))  # the refusal names the run's (and the step's) state
        return 1
    print(f"run {run.id} aborted")
    return 0


def step_action(args: argparse.Namespace) -> int:
    """``baton runs retry|skip ID STEP``: the same guarded change as the API, then a segment."""
    flag = "--input" if args.action == "retry" else "--output"
    raw = args.input if args.action == "retry" else args.output
    try:
        reason = check_reason(args.reason)
        value = _json_argument(raw, flag)
    except ValueProblem as exc:
        error(str(exc))  # an argument that cannot be read: nothing was asked
        return 2
    lifecycle = _lifecycle()
    try:
        if args.action == "retry":
            prepared = lifecycle.prepare_retry(
                args.run_id, args.step_id, by=args.user, input=value, reason=reason
            )
        else:
            prepared = lifecycle.prepare_skip(
                args.run_id,
                args.step_id,
                by=args.user,
                output=value,
                reason=reason,
                given=raw is not None,
            )
    except LifecycleError as exc:
        error(str(exc))  # the refusal names the run's (and the step's) state
        return 1
    return _launched(args, lifecycle.launch_prepared(prepared), prepared.launch)


def _launched(args: argparse.Namespace, launched: Launched, launch: bool) -> int:
    if not launch:
        print(
            f"step '{args.step_id}' skipped ahead; run {args.run_id} reuses the output when "
            "it reaches the step"
        )
        return 0
    if launched.dagster_run_id is None:
        error(f"the run could not continue: {launched.error}")
        return 1
    done = "retried" if args.action == "retry" else "skipped"
    print(
        f"step '{args.step_id}' {done}; run {args.run_id} continues in Dagster run "
        f"{launched.dagster_run_id}"
    )
    return 0


def _json_argument(raw: str | None, flag: str) -> Any:
    """``--input``/``--output``: JSON text, or ``@FILE`` holding it (parsed strictly, within
    the input limits; the lifecycle checks the value again as it does the API's)."""
    if raw is None:
        return None
    field = flag.lstrip("-")
    if raw.startswith("@"):
        try:
            data: bytes | str = Path(raw[1:]).read_bytes()
        except OSError as exc:
            raise ValueProblem(field, f"cannot read {raw[1:]}: {exc.strerror}") from None
    else:
        data = raw
    return parse_json(data, field=field, limits=input_limits(get_settings()))
