"""``baton validate`` and ``baton schema``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent_resources.contracts import agent_input_checks
from baton.settings import get_settings
from orchestration_defs.language.library import load_library
from orchestration_defs.language.models import OrchestrationSpec


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check orchestration files; exit 1 if any is invalid")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders")
    p.set_defaults(func=validate)
    p = sub.add_parser("schema", help="print the JSON Schema of the orchestration language")
    p.set_defaults(func=schema)


def validate(args: argparse.Namespace) -> int:
    loaded, errors = load_library(
        args.paths,
        known_agents=agent_input_checks(),
        max_depth=get_settings().children.max_depth,
    )
    for problem in errors:
        print(problem)
    for item in loaded:
        if not any(e.source == str(item.path) for e in errors):
            print(f"{item.path}: ok ({item.spec.slug} v{item.spec.version})")
    if errors:
        files = len({e.source for e in errors})
        print(f"{len(errors)} problem(s) in {files} file(s)")
        return 1
    if not loaded:
        print("no orchestration files found")
        return 1
    return 0


def schema(_args: argparse.Namespace) -> int:
    document = OrchestrationSpec.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Baton orchestration"
    print(json.dumps(document, indent=2))
    return 0
