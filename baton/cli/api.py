"""``baton api serve`` and ``baton api openapi [--out FILE] [--check]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from baton.cli.output import error
from baton.settings import PACKAGE_ROOT, get_settings

DEFAULT_SPEC = PACKAGE_ROOT / "docs" / "openapi.json"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    api = sub.add_parser("api", help="Baton's HTTP API").add_subparsers(
        dest="api_command", required=True
    )
    p = api.add_parser("serve", help="serve the API with uvicorn (what `baton up` starts)")
    p.add_argument("--host", help="interface (default BATON_API__HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default BATON_API__PORT, 8080)")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=serve)
    p = api.add_parser("openapi", help="write the OpenAPI document, or check it is current")
    p.add_argument(
        "--out", type=Path, help=f"file to write (default: stdout; docs: {DEFAULT_SPEC})"
    )
    p.add_argument(
        "--check", action="store_true", help="exit 1 if --out (default docs/openapi.json) differs"
    )
    p.set_defaults(func=openapi)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from baton.api.app import create_app

    settings = get_settings()
    host = args.host or settings.api.host
    port = args.port or settings.api.port
    print(f"Baton API on http://{host}:{port} (OpenAPI at /docs)", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=args.log_level)
    return 0


def render_openapi() -> str:
    """The OpenAPI document of the API as committed: sorted keys, two-space indent."""
    from baton.api.app import create_app

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"


def openapi(args: argparse.Namespace) -> int:
    document = render_openapi()
    if args.check:
        path: Path = args.out or DEFAULT_SPEC
        current = path.read_text() if path.exists() else ""
        if current != document:
            error(f"{path} is out of date; run `make openapi` (baton api openapi --out {path})")
            return 1
        print(f"{path} is current")
        return 0
    if args.out is None:
        sys.stdout.write(document)
        return 0
    args.out.write_text(document)
    print(f"wrote {args.out}")
    return 0
