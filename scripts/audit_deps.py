"""Audit Baton's locked dependency set against the advisory snapshot (``make audit``).

Checks, each failing the run (exit 1) on a finding:

1. every ``name==version`` of the lock against ``scripts/advisories.yaml`` (OSV ranges);
2. with ``--floors pyproject.toml``: no lower bound of pyproject's dependencies is itself an
   affected version (a floor must lie past every known advisory);
3. with ``--installed``: the packages of the running environment, so a venv that drifted from
   the lock is audited as it is (a drift is reported, not failed: a new dependency lands
   before its lock refresh);
4. with ``--live``: pip-audit against osv.dev on the lock, when that service answers. It does
   not answer on this project's machines (only package registries are reachable), so the run
   says it was skipped and the snapshot is what gates.

Exit 2 on bad input (a malformed lock or snapshot), naming file, line or entry.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
OSV_QUERY_URL = "https://api.osv.dev/v1/query"
_LOCK_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;#]+)")


class InputError(Exception):
    """A lock, snapshot or pyproject that cannot be read; the message names where."""


@dataclass(frozen=True)
class Advisory:
    """One advisory for one package: its id, aliases and affected ranges."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    package: str
    ranges: tuple[tuple[tuple[str, Version], ...], ...]

    def affects(self, version: Version) -> bool:
        return any(_in_range(events, version) for events in self.ranges)

    def fixed_in(self) -> list[str]:
        return [str(v) for events in self.ranges for kind, v in events if kind == "fixed"]


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: Advisory
    where: str

    def __str__(self) -> str:
        aliases = f" ({', '.join(self.advisory.aliases)})" if self.advisory.aliases else ""
        fixed = ", ".join(self.advisory.fixed_in()) or "no fixed release"
        return (
            f"{self.where}: {self.package} {self.version} is affected by "
            f"{self.advisory.id}{aliases}: {self.advisory.summary}; fixed in {fixed}"
        )


def normalize(name: str) -> str:
    """The PEP 503 form of a project name (``Jinja2`` -> ``jinja2``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(text: Any, where: str) -> Version:
    try:
        return Version(str(text))
    except InvalidVersion as exc:
        raise InputError(f"{where}: '{text}' is not a version") from exc


def _in_range(events: Sequence[tuple[str, Version]], version: Version) -> bool:
    # OSV ECOSYSTEM semantics: events in order; introduced opens, fixed (exclusive) and
    # last_affected (inclusive) close.
    affected = False
    for kind, bound in events:
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind == "fixed" and version >= bound) or (
            kind == "last_affected" and version > bound
        ):
            affected = False
    return affected


def load_advisories(path: Path) -> list[Advisory]:
    """Every (advisory, package) pair of the snapshot.

    Raises:
        InputError: the file is not YAML of the expected shape (the entry is named).
    """
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the advisory snapshot: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("advisories"), list):
        raise InputError(f"{path}: expected a mapping with an 'advisories' list")
    found: list[Advisory] = []
    for index, entry in enumerate(data["advisories"]):
        found.extend(_entry(entry, f"{path}: advisories[{index}]"))
    return found


def _entry(entry: Any, where: str) -> list[Advisory]:
    if not isinstance(entry, dict) or not entry.get("id") or not entry.get("affected"):
        raise InputError(f"{where}: expected 'id' and 'affected'")
    where = f"{where} ({entry['id']})"
    advisories = []
    for affected in entry["affected"]:
        name = (affected.get("package") or {}).get("name")
        if not name or not affected.get("ranges"):
            raise InputError(f"{where}: each 'affected' needs package.name and ranges")
        ranges = tuple(_events(r, where) for r in affected["ranges"])
        advisories.append(
            Advisory(
                id=str(entry["id"]),
                aliases=tuple(str(a) for a in entry.get("aliases") or ()),
                summary=str(entry.get("summary", "")),
                package=normalize(name),
                ranges=ranges,
            )
        )
    return advisories


def _events(range_: Any, where: str) -> tuple[tuple[str, Version], ...]:
    kinds = ("introduced", "fixed", "last_affected")
    events = []
    for event in range_.get("events") or ():
        (kind, value), *rest = event.items()
        if rest or kind not in kinds:
            raise InputError(f"{where}: an event is one of {', '.join(kinds)}, got {event}")
        events.append((kind, _version(value, where)))
    if not events or events[0][0] != "introduced":
        raise InputError(f"{where}: a range starts with 'introduced'")
    return tuple(events)


def read_lock(path: Path) -> dict[str, tuple[str, int]]:
    """``{normalized name: (version, line)}`` of a pip-freeze style lock.

    Raises:
        InputError: a line is not ``name==version`` (file and line named).
    """
    pins: dict[str, tuple[str, int]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the lock: {exc}") from exc
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LOCK_LINE.match(line)
        if match is None:
            raise InputError(f"{path}:{number}: expected 'name==version', got '{raw.strip()}'")
        _version(match["version"], f"{path}:{number}")
        pins[normalize(match["name"])] = (match["version"], number)
    return pins


def audit(
    pins: dict[str, str], advisories: Iterable[Advisory], where: dict[str, str]
) -> list[Finding]:
    """Every pinned version an advisory affects."""
    by_package: dict[str, list[Advisory]] = {}
    for advisory in advisories:
        by_package.setdefault(advisory.package, []).append(advisory)
    findings = []
    for name, version in sorted(pins.items()):
        parsed = Version(version)
        for advisory in by_package.get(name, ()):
            if advisory.affects(parsed):
                findings.append(Finding(name, version, advisory, where[name]))
    return findings


def floor_findings(pyproject: Path, advisories: Sequence[Advisory]) -> list[Finding]:
    """Lower bounds (``>=``/``==``) of pyproject's dependencies that an advisory affects."""
    import tomllib

    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{pyproject}: cannot read [project]: {exc}") from exc
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    floors: dict[str, str] = {}
    where: dict[str, str] = {}
    for spec in specs:
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as exc:
            raise InputError(f"{pyproject}: dependency '{spec}': {exc}") from exc
        for clause in requirement.specifier:
            if clause.operator in (">=", "==", "~="):
                name = normalize(requirement.name)
                floors[name] = clause.version
                where[name] = f"{pyproject} floor '{spec}'"
    return audit(floors, advisories, where)


def installed() -> dict[str, str]:
    """``{normalized name: version}`` of the running environment."""
    return {normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}


def drift(locked: dict[str, str], present: dict[str, str], own: str = "baton") -> list[str]:
    """Differences between the lock and the environment, one readable line each."""
    lines = []
    for name in sorted(set(present) - set(locked) - {own}):
        lines.append(f"installed but not locked: {name}=={present[name]}")
    for name in sorted(set(locked) & set(present)):
        if Version(locked[name]) != Version(present[name]):
            lines.append(f"locked {name}=={locked[name]} but {present[name]} is installed")
    return lines


def live_audit(lock: Path, timeout: float = 5.0) -> tuple[str, int]:
    """pip-audit on the lock against osv.dev: ``(message, exit code)``; 0 when skipped."""
    pip_audit = shutil.which("pip-audit") or str(Path(sys.executable).parent / "pip-audit")
    if not Path(pip_audit).exists():
        return "live audit skipped: pip-audit is not installed", 0
    probe = urllib.request.Request(OSV_QUERY_URL, data=b"{}", method="POST")
    try:
        urllib.request.urlopen(probe, timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # the service answered (a 4xx for the empty query): it is reachable
    except (urllib.error.URLError, OSError) as exc:
        return f"live audit skipped: osv.dev does not answer here ({exc})", 0
    done = subprocess.run(
        [pip_audit, "-r", str(lock), "--no-deps", "--disable-pip", "-s", "osv", "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return "live audit (pip-audit, osv.dev): no known vulnerabilities", 0
    try:
        report = json.loads(done.stdout)
        hits = [
            f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])}"
            for d in report.get("dependencies", [])
            if d.get("vulns")
        ]
    except (json.JSONDecodeError, KeyError, TypeError):
        hits = [done.stderr.strip() or done.stdout.strip()]
    return "live audit (pip-audit, osv.dev) found:\n  " + "\n  ".join(hits), 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--advisories", type=Path, default=ROOT / "scripts" / "advisories.yaml")
    parser.add_argument("--floors", type=Path, help="pyproject.toml whose floors to check")
    parser.add_argument("--installed", action="store_true", help="also audit this environment")
    parser.add_argument("--live", action="store_true", help="also run pip-audit if reachable")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    advisories = load_advisories(args.advisories)
    lock = read_lock(args.lock)
    locked = {name: version for name, (version, _) in lock.items()}
    where = {name: f"{args.lock}:{line}" for name, (_, line) in lock.items()}
    findings = audit(locked, advisories, where)
    if args.floors:
        findings += floor_findings(args.floors, advisories)
    if args.installed:
        present = installed()
        for line in drift(locked, present):
            print(f"note: {line} (run `make lock` to refresh the lock)")
        extra = {n: v for n, v in present.items() if locked.get(n) != v}
        findings += audit(extra, advisories, dict.fromkeys(extra, "installed"))
    for finding in findings:
        print(finding)
    ids = {a.id for a in advisories}
    print(
        f"audited {len(locked)} locked packages against {len(ids)} advisories "
        f"({args.advisories.name}): {len(findings)} finding(s)"
    )
    code = 1 if findings else 0
    if args.live:
        message, live_code = live_audit(args.lock)
        print(message)
        code = max(code, live_code)
    return code


if __name__ == "__main__":
    sys.exit(main())
