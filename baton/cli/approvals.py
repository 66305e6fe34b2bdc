"""``baton users ...`` and ``baton approvals list|show|decide``."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from typing import Any

from baton.approvals import ApprovalError, Approvals
from baton.cli.output import dumps, error
from baton.cli.run import parse_inputs
from baton.db.models import HumanApproval
from baton.edge import check_decision
from baton.launch import OneShotLauncher
from baton.library import prepare_database
from baton.lifecycle import Launched, Launcher, Lifecycle
from baton.lineage import approvals_with_chains, chain_of, chain_text
from baton.settings import get_settings
from baton.store.service import RunStore
from baton.store.users import UsersRepository
from orchestration_defs.language.values import ValueProblem, shown

EXIT_CODES = {"not_found": 1, "conflict": 1, "forbidden": 1, "invalid": 1}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="people who may approve").add_subparsers(
        dest="users_command", required=True
    )
    p = users.add_parser("add", help="add a user (or replace their groups)")
    p.add_argument("name")
    p.add_argument("--org", default="global", help="organization (default global)")
    p.add_argument("--group", action="append", default=[], help="a group; repeat for more")
    p.set_defaults(func=add_user)
    p = users.add_parser("list", help="users with their groups")
    p.add_argument("--org")
    p.set_defaults(func=list_users)

    approvals = sub.add_parser("approvals", help="checkpoint approvals").add_subparsers(
        dest="approvals_command", required=True
    )
    p = approvals.add_parser("list", help="approvals (default: pending)")
    p.add_argument("--status", default="pending", help="pending, decided, resumed, ... or all")
    p.add_argument(
        "--run",
        type=uuid.UUID,
        metavar="ID",
        help="only this run and the runs below it (its child runs, at any depth)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_approvals)
    p = approvals.add_parser("show", help="one approval with its prompt, content and audit")
    p.add_argument("approval_id", type=uuid.UUID, metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=show_approval)
    p = approvals.add_parser("decide", help="decide an approval")
    p.add_argument("approval_id", type=uuid.UUID, metavar="ID")
    p.add_argument("--as", dest="user", required=True, help="the deciding user")
    p.add_argument("--decision", required=True, choices=["continue", "retry", "abort"])
    p.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a modification; VALUE is JSON when valid JSON, else a string",
    )
    p.add_argument("--comment")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=decide)


def _store() -> RunStore:
    settings = get_settings()
    prepare_database(settings)
    return RunStore(settings.db_url)


def add_user(args: argparse.Namespace) -> int:
    with _store().session() as s:
        user = UsersRepository(s).upsert(organization=args.org, name=args.name, groups=args.group)
        print(f"{user.name} ({user.organization}) groups: {', '.join(user.groups) or '-'}")
    return 0


def list_users(args: argparse.Namespace) -> int:
    with _store().session() as s:
        for user in UsersRepository(s).list(args.org):
            print(f"{user.organization:16} {user.name:24} {', '.join(user.groups) or '-'}")
    return 0


def approval_view(
    approval: HumanApproval,
    votes: list[Any] | None = None,
    chain: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An approval as plain data, for --json and the API; ``chain`` (``baton.lineage``) is
    the runs from the root down to the approval's run."""
    view = {
        "approval_id": str(approval.id),
        "run_id": str(approval.run_id),
        "root_run_id": chain[0]["run_id"] if chain else None,
        "chain": list(chain or []),
        "where": chain_text(chain or []),
        "step_id": approval.step_id,
        "status": approval.status,
        "organization": approval.organization,
        "prompt": approval.prompt,
        "show": approval.show,
        "decisions": approval.policy.get("decisions"),
        "approvers": approval.policy.get("approvers"),
        "required_approvals": approval.policy.get("required_approvals"),
        "modifiable": approval.policy.get("modifiable"),
        "requested_by": approval.requested_by,
        "requested_at": approval.requested_at,
        "expires_at": approval.expires_at,
        "escalations": approval.escalations,
        "decision": approval.decision,
        "decided_by": approval.decided_by,
        "decided_at": approval.decided_at,
        "comment": approval.comment,
        "modifications": approval.modifications,
        "diff": approval.diff,
        "previous_approval_id": str(approval.previous_approval_id)
        if approval.previous_approval_id
        else None,
        "claimed_by": approval.claimed_by,
        "claimed_at": approval.claimed_at,
        "launch_error": approval.launch_error,
        "launch_attempts": approval.launch_attempts or 0,
    }
    if votes is not None:
        view["votes"] = [
            {
                "user": v.user_name,
                "decision": v.decision,
                "modifications": v.modifications,
                "comment": v.comment,
                "at": v.created_at,
            }
            for v in votes
        ]
    return view


def list_approvals(args: argparse.Namespace) -> int:
    status = None if args.status == "all" else args.status
    rows = approvals_with_chains(_store(), status=status, run_id=args.run)
    if args.json:
        print(dumps([approval_view(r.approval, chain=r.chain) for r in rows]))
        return 0
    print(f"{'APPROVAL ID':36}  {'RUN ID':36}  {'STEP':16}  {'STATUS':9}  PROMPT")
    for row in rows:
        a = row.approval
        print(f"{a.id!s:36}  {a.run_id!s:36}  {a.step_id[:16]:16}  {a.status:9}  {a.prompt[:60]}")
        if len(row.chain) > 1:  # a child's checkpoint: say which tree it belongs to
            print(f"{'':38}{chain_text(row.chain)}")
    return 0


def show_approval(args: argparse.Namespace) -> int:
    store = _store()
    approvals = Approvals(store)
    try:
        approval = approvals.get(args.approval_id)
    except ApprovalError as exc:
        error(str(exc))
        return 1
    with store.session() as s:
        chain = chain_of(s, approval.run_id)
    view = approval_view(approval, approvals.votes(approval.id), chain)
    if args.json:
        print(dumps(view))
        return 0
    print(f"approval {approval.id}  ({approval.status})  run {approval.run_id}")
    if view["where"]:
        print(view["where"])
    print(f"step: {approval.step_id}\nprompt: {approval.prompt}")
    print(f"show:\n{dumps(approval.show)}")
    print(
        f"decisions: {', '.join(view['decisions'] or [])}  modifiable: "
        f"{dumps(view['modifiable'], indent=None)}"
    )
    if approval.decision:
        print(
            f"decided: {approval.decision} by {approval.decided_by} at "
            f"{approval.decided_at}  comment: {approval.comment or '-'}"
        )
        print(f"changes: {dumps(approval.diff, indent=None)}")
    if approval.status == "resuming":
        print(f"claimed by {approval.claimed_by or '-'} at {approval.claimed_at or '-'}")
    if approval.launch_error:
        print(f"waits on the system: {approval.launch_error} (the approval sensor retries)")
    return 0


def decide(args: argparse.Namespace) -> int:
    try:
        changes = parse_inputs(args.changes, what="--set", root="modifications")
    except ValueError as exc:
        error(str(exc))
        return 2
    return decide_with(args, _store(), OneShotLauncher(get_settings()), changes)


def decide_with(
    args: argparse.Namespace,
    store: RunStore,
    launcher: Launcher,
    changes: dict[str, Any] | None = None,
) -> int:
    """``decide`` on a given store and launcher: record the decision, then resume the run
    from this process (the approval sensor takes over if the launch fails)."""
    if changes is None:
        changes = parse_inputs(args.changes, what="--set", root="modifications")
    approvals = Approvals(store)
    lifecycle = Lifecycle(store, launcher, via="cli")
    try:
        check_decision(get_settings(), changes, args.comment)
    except ValueProblem as exc:
        error(f"{exc} (field: {exc.field})")
        return 2
    try:
        approval = lifecycle.decide(
            args.approval_id,
            user=args.user,
            decision=args.decision,
            modifications=changes,
            comment=args.comment,
        )
    except ApprovalError as exc:
        error(f"{exc}" + (f" (field: {exc.field})" if exc.field else ""))
        _set_hint(approvals, args.approval_id, exc.field, changes)
        return EXIT_CODES.get(exc.code, 1)
    launched = lifecycle.resume(approval.id) if approval.status == "decided" else None
    if args.json:
        view = approval_view(approvals.get(approval.id), approvals.votes(approval.id))
        print(dumps({**view, "dagster_run_id": launched.dagster_run_id if launched else None}))
    elif approval.status == "pending":
        print(f"vote recorded; approval {approval.id} waits for more approvers")
    else:
        print(_decided_line(approval, launched))
    return 0


def _set_hint(
    approvals: Approvals, approval_id: uuid.UUID, field: str | None, changes: dict[str, Any]
) -> None:
    """Say why a text field got a number: ``--set title=2026`` is read as JSON, as ``-i`` is."""
    key = (field or "").removeprefix("modifications.")
    value = changes.get(key)
    if not field or key == field or not (value is None or isinstance(value, int | float)):
        return
    if approvals.get(approval_id).policy.get("modifiable", {}).get(key) != "string":
        return
    raw = dumps(value, indent=None)
    error(f"--set reads {raw} as JSON; for the text, --set '{shown(key)}=\"{raw}\"'")


def _decided_line(approval: HumanApproval, launched: Launched | None) -> str:
    head = f"approval {approval.id} decided: {approval.decision}"
    if approval.decision == "abort":
        return f"{head}; the run is aborted"
    if launched is None:
        return f"{head}; the approval sensor resumes the run"
    if launched.dagster_run_id is None:
        return (
            f"{head}; the run could not be resumed from here ({launched.error}); "
            "the approval sensor retries and `baton doctor` shows why it waits"
        )
    return f"{head}; the run resumes in Dagster run {launched.dagster_run_id}"
