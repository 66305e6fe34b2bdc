"""``baton run SLUG -i key=value ... -s key=text ... [--wait] [--json]``."""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

from baton.approvals import Approvals
from baton.cli.output import dumps, error
from baton.edge import input_limits
from baton.launch import OneShotLauncher
from baton.library import find_latest, library_slugs, load_and_register, prepare_database
from baton.lifecycle import Lifecycle
from baton.settings import Settings, get_settings
from baton.slugs import UnknownSlug, resolve_slug
from baton.state import TERMINAL_RUN_STATUSES
from baton.store.service import RunStore
from orchestration_defs.language.errors import SpecErrors
from orchestration_defs.language.inputs import InputError, resolve_inputs
from orchestration_defs.language.values import (
    JsonSyntaxError,
    ValueProblem,
    key_path,
    parse_json,
    shown,
)

# --wait returns when the run ends or waits for a person.
SETTLED = TERMINAL_RUN_STATUSES | {"awaiting_approval"}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="launch an orchestration run through Dagster")
    p.add_argument("slug", help="the orchestration's slug")
    p.add_argument(
        "-i",
        "--input",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input; VALUE is read as JSON when it is valid JSON, else as a string: "
        "-i n=3 is the number 3, -i 'tags=[\"a\"]' a list, -i name=Ada the text Ada; "
        "for text that looks like JSON (123, true, null) quote it, -i 'customer=\"123\"', "
        "or use -s",
    )
    p.add_argument(
        "-s",
        "--input-str",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='an input whose VALUE is text as given, never JSON: -s customer=123 is "123"',
    )
    p.add_argument("--wait", action="store_true", help="wait for the run to settle")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")
    p.add_argument(
        "--as",
        dest="user",
        default=os.environ.get("USER") or "cli",
        help="who launches the run (an approver may not approve their own run)",
    )
    p.set_defaults(func=run)


def parse_inputs(pairs: list[str], *, what: str = "input", root: str = "inputs") -> dict[str, Any]:
    """``key=value`` pairs; a value is JSON when it parses as JSON, else a string.

    JSON is parsed strictly (``parse_json``): ``-i 'n=1e999999'`` or a ``"\\ud800"`` escape is
    refused rather than read as infinity or a lone surrogate. An argument that is not valid
    UTF-8 reaches Python as lone surrogates and is refused too (by ``resolve_inputs``).

    Args:
        pairs: the ``KEY=VALUE`` arguments.
        what: how messages call one (``input``, ``--set``).
        root: where the paths in messages start (``inputs``, ``modifications``).

    Raises:
        ValueError: a pair has no '=', or its value is JSON holding something refused.
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} '{shown(pair)}' is not KEY=VALUE")
        try:
            values[key] = parse_json(raw, field=key_path(root, key))
        except JsonSyntaxError:
            values[key] = raw
        except ValueProblem as exc:
            raise ValueError(f"{what} '{shown(key)}': {exc}") from None
    return values


def parse_text_inputs(pairs: list[str]) -> dict[str, str]:
    """``key=value`` pairs of ``-s``; every value is the text as given.

    Raises:
        ValueError: a pair has no '=' or no key.
    """
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"-s '{shown(pair)}' is not KEY=VALUE")
        values[key] = raw
    return values


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The inputs of ``-i`` (JSON first) and ``-s`` (text); a key given by both is refused."""
    given = parse_inputs(args.input)
    texts = parse_text_inputs(args.input_str)
    both = sorted(set(given) & set(texts))
    if both:
        raise ValueError(f"input '{shown(both[0])}' is given by both -i and -s; give it once")
    return {**given, **texts}


def _json_hints(
    item_inputs: dict[str, Any], given: dict[str, Any], args: argparse.Namespace
) -> None:
    """Say why a text input got a number: ``-i customer=123`` is read as JSON."""
    texts = set(parse_text_inputs(args.input_str))
    for key, value in given.items():
        spec = item_inputs.get(key)
        scalar = value is None or isinstance(value, int | float)  # bool is an int
        if spec is None or spec.type != "string" or key in texts or not scalar:
            continue
        raw = dumps(value, indent=None)
        error(
            f"input '{shown(key)}': -i reads {raw} as JSON; for the text, "
            f"-s {shown(key)}={raw} or -i '{shown(key)}=\"{raw}\"'"
        )


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        given = _given(args)
    except ValueError as exc:
        error(str(exc))
        return 2
    try:
        slug = resolve_slug(args.slug, library_slugs(settings))  # a job name is fine too
    except UnknownSlug as exc:
        error(f"{exc.message} (library: {settings.library_dir})")
        return 1
    try:
        item = find_latest(settings, slug)
    except SpecErrors as exc:
        error(f"the library has invalid definitions:\n{exc}")
        return 1
    if item is None:
        error(f"no orchestration '{slug}' in the library ({settings.library_dir})")
        return 1
    try:
        inputs = resolve_inputs(item.spec.inputs, given, input_limits(settings))
    except InputError as exc:
        for problem in exc.problems:
            error(problem)
        _json_hints(dict(item.spec.inputs), given, args)
        return 1
    prepare_database(settings)
    load_and_register(settings)
    store = RunStore(settings.db_url)
    lifecycle = Lifecycle(store, OneShotLauncher(settings), via="cli")
    run_id = lifecycle.start(
        organization=item.spec.organization,
        slug=item.spec.slug,
        version=item.spec.version,
        inputs=inputs,
        user=args.user,
    )
    launched = lifecycle.launch_new(run_id, user=args.user)
    if launched.dagster_run_id is None:
        error(launched.error or "the run did not start")
        return 1
    dagster_run_id = launched.dagster_run_id
    if not args.wait:
        _report(args, store, run_id, dagster_run_id, final=False)
        return 0
    if not args.json:
        print(f"orchestration run {run_id} launched as Dagster run {dagster_run_id}")
    status = _wait(settings, store, run_id, dagster_run_id, args.timeout)
    _report(args, store, run_id, dagster_run_id, final=True)
    return 0 if status in ("completed", "awaiting_approval") else 1


def _wait(
    settings: Settings, store: RunStore, run_id: uuid.UUID, dagster_run_id: str, timeout: float
) -> str:
    from dagster import DagsterInstance, DagsterRunStatus

    failed = {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    with DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            status = store.get_run(run_id).status
            dagster_run = instance.get_run_by_id(dagster_run_id)
            # Settled once both agree: the finish op records Baton's status a moment before
            # Dagster marks its run finished, and callers expect to see both.
            if status in SETTLED and (dagster_run is None or dagster_run.is_finished):
                return status
            if dagster_run is not None and dagster_run.status in failed:
                # The ops record their own failures; this catches a run that died before.
                store.fail_run(
                    run_id,
                    {
                        "message": f"Dagster run {dagster_run_id} ended {dagster_run.status.value}",
                        "type": "DagsterRun",
                    },
                )
                return store.get_run(run_id).status
            time.sleep(0.3)
    error(f"gave up waiting after {timeout:g} s; the run goes on")
    return store.get_run(run_id).status


def _report(
    args: argparse.Namespace,
    store: RunStore,
    run_id: uuid.UUID,
    dagster_run_id: str,
    *,
    final: bool,
) -> None:
    run = store.get_run(run_id)
    pending = [str(a.id) for a in Approvals(store).find(run_id=run_id, status="pending")]
    if args.json:
        body = {
            "run_id": str(run_id),
            "status": run.status,
            "outputs": run.outputs,
            "dagster_run_id": dagster_run_id,
            "approvals": pending,
        }
        if run.error:
            body["error"] = run.error
        print(dumps(body))
        return
    if not final:
        print(run_id)
        return
    print(f"status: {run.status}")
    if run.outputs is not None:
        print("outputs:")
        print(dumps(run.outputs))
    if run.error:
        print(f"error: {run.error.get('message', run.error)}")
    for approval_id in pending:
        print(f"waiting for approval {approval_id}: baton approvals show {approval_id}")
