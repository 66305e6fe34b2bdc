"""``baton runs compensate ID`` and the compensation part of ``baton runs show``."""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from baton.cli.output import dumps, error
from baton.compensation import Compensations
from baton.edge import check_reason
from baton.launch import OneShotLauncher
from baton.library import prepare_database
from baton.lifecycle import Lifecycle, LifecycleError
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.language.values import ValueProblem


def add_parser(runs: argparse._SubParsersAction) -> None:
    p = runs.add_parser(
        "compensate",
        help="undo the completed steps of a failed or aborted run (their compensate:), last "
        "first; a failed compensation runs its failed steps again",
    )
    p.add_argument("run_id", type=uuid.UUID, metavar="ID")
    p.add_argument("--as", dest="user", default=os.environ.get("USER") or "cli")
    p.add_argument("--reason", help="why (kept in the run's audit log)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=compensate_run)


def compensate_run(args: argparse.Namespace) -> int:
    """The same guarded change as the API's, then the compensation job launched from here."""
    try:
        reason = check_reason(args.reason)
    except ValueProblem as exc:
        error(str(exc))  # an argument that cannot be read: nothing was asked
        return 2
    settings = get_settings()
    prepare_database(settings)
    store = RunStore(settings.db_url)
    lifecycle = Lifecycle(store, OneShotLauncher(settings), via="cli")
    try:
        launched = lifecycle.compensate(args.run_id, by=args.user, reason=reason)
    except LifecycleError as exc:
        error(str(exc))  # the refusal names the run's state (and its compensation's)
        return 1
    if args.json:
        body = {"run_id": str(args.run_id), "dagster_run_id": launched.dagster_run_id}
        print(dumps({**body, "error": launched.error}))
    elif launched.dagster_run_id is None:
        print(
            f"compensation of run {args.run_id} planned; not launched here "
            f"({launched.error}): the compensation sensor launches it"
        )
    else:
        print(f"compensation of run {args.run_id} runs in Dagster run {launched.dagster_run_id}")
    return 0


def compensation_summary(store: RunStore, run: Any) -> dict[str, Any] | None:
    """The run's compensation and its rows in the order they run (None: it has none)."""
    if run.compensation is None:
        return None
    rows = Compensations(store).rows(run.id)
    return {
        "status": run.compensation,
        "error": run.compensation_error,
        "claimed_by": run.compensation_claimed_by,
        "claimed_at": run.compensation_claimed_at,
        "steps": [
            {
                "step_id": r.step_id,
                "position": r.position,
                "agent": r.agent,
                "status": r.status,
                "attempt": r.attempt,
                "call": r.call_number,
                "input": r.input,
                "output": r.output,
                "error": r.error,
                "dagster_run_id": r.dagster_run_id,
                "finished_at": r.finished_at,
            }
            for r in rows
        ],
    }


def compensation_lines(summary: dict[str, Any] | None) -> list[str]:
    """``runs show``'s lines: the status, then one line per step undone, in order."""
    if summary is None:
        return []
    claimed = f" (claimed by {summary['claimed_by']})" if summary["claimed_by"] else ""
    lines = [f"compensation: {summary['status']}{claimed}"]
    if summary["error"]:
        lines.append(f"  error: {summary['error']}")
    for row in summary["steps"]:
        why = f"  error: {row['error'].get('message')}" if row["error"] else ""
        lines.append(
            f"  {row['position']:>2}. {row['step_id']:24} {row['status']:10} "
            f"attempts: {row['attempt']}  agent: {row['agent']}{why}"
        )
    return lines
