"""``baton celery-worker``: a Celery worker that runs the steps the celery executor sends."""

from __future__ import annotations

import argparse
import socket
import sys

from baton.settings import get_settings


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "celery-worker",
        help="run a Celery worker for the steps of BATON_EXECUTION__EXECUTOR=celery runs "
        "(broker, backend and queue from BATON_EXECUTION__CELERY_*)",
    )
    p.add_argument(
        "-n",
        "--name",
        default=f"baton@{socket.gethostname()}",
        help="worker name, unique per machine (default baton@<host>; %%h is the host name)",
    )
    p.add_argument("-c", "--concurrency", type=int, default=1, help="steps at once (default 1)")
    p.add_argument(
        "--pool",
        default="prefork",
        choices=["prefork", "solo", "threads"],
        help="Celery pool: prefork (a process per slot, default), solo, threads",
    )
    p.add_argument("--loglevel", default="INFO", help="Celery log level (default INFO)")
    p.set_defaults(func=celery_worker)


def celery_worker(args: argparse.Namespace) -> int:
    from baton.celery_worker import CeleryUnavailable, run_worker

    if args.concurrency < 1:
        print("--concurrency: expected a whole number >= 1", file=sys.stderr)
        return 2
    queue = get_settings().execution.celery_queue
    print(f"baton celery-worker {args.name}: queue {queue!r}", file=sys.stderr)
    try:
        run_worker(
            name=args.name, concurrency=args.concurrency, pool=args.pool, loglevel=args.loglevel
        )
    except CeleryUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 0
