"""``baton secrets generate-key|rotate-key``: the key that encrypts stored webhook secrets.

The procedure is in docs/production.md ("Rotating BATON_SECRET_KEY"); the work is in
``baton.webhooks.key_rotation``.
"""

from __future__ import annotations

import argparse

from cryptography.fernet import Fernet

from baton.cli.output import dumps, error
from baton.library import prepare_database
from baton.settings import get_settings
from baton.webhooks.crypto import SecretKeyError
from baton.webhooks.key_rotation import KeyRotationError, RotationReport, rotate_key


def add_parsers(sub: argparse._SubParsersAction) -> None:
    secrets = sub.add_parser(
        "secrets", help="the key that encrypts stored webhook secrets"
    ).add_subparsers(dest="secrets_command", required=True)
    p = secrets.add_parser("generate-key", help="print a new key for BATON_SECRET_KEY")
    p.set_defaults(func=generate_key)
    p = secrets.add_parser(
        "rotate-key",
        help="re-encrypt every stored webhook secret under BATON_SECRET_KEY "
        "(the old key in BATON_SECRET_KEY_PREVIOUS)",
    )
    p.add_argument("--dry-run", action="store_true", help="say what it would do, change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=rotate)


def generate_key(_args: argparse.Namespace) -> int:
    print(Fernet.generate_key().decode())
    return 0


def rotate(args: argparse.Namespace) -> int:
    settings = get_settings()
    prepare_database(settings)
    try:
        report = rotate_key(settings.db_url, settings, dry_run=args.dry_run)
    except (KeyRotationError, SecretKeyError) as exc:
        error(str(exc))
        return 1
    if args.json:
        print(dumps(_as_json(report)))
        return 0
    done, dropped = ("to re-encrypt", "to drop") if report.dry_run else ("re-encrypted", "dropped")
    for kind, tally in report.kinds.items():
        line = f"{kind}: {tally.reencrypted} {done}, {tally.current} already current"
        if tally.dropped:
            line += f", {tally.dropped} past their grace period {dropped}"
        print(line)
    verb = "would re-encrypt" if report.dry_run else "re-encrypted"
    print(
        f"{verb} {report.reencrypted} secrets under the current key, "
        f"{report.current} already current"
        + (f", {report.dropped} expired {dropped}" if report.dropped else "")
        + ("; dry run: nothing changed" if report.dry_run else "")
    )
    return 0


def _as_json(report: RotationReport) -> dict[str, object]:
    return {
        "dry_run": report.dry_run,
        "reencrypted": report.reencrypted,
        "already_current": report.current,
        "dropped": report.dropped,
        "kinds": {
            kind: {"reencrypted": t.reencrypted, "already_current": t.current, "dropped": t.dropped}
            for kind, t in report.kinds.items()
        },
    }
