"""scripts/audit_deps.py: a lock with an affected version fails, the shipped lock passes, bad
input is named by file and line, and OSV range semantics hold."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "audit_deps.py"
SNAPSHOT = ROOT / "scripts" / "advisories.yaml"
LOCK = ROOT / "requirements.lock"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_deps"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


audit_deps = _module()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


def _lock(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.lock"
    path.write_text(text)
    return path


def test_a_lock_with_jinja2_3_1_4_fails_naming_the_advisories(tmp_path: Path) -> None:
    lock = _lock(tmp_path, "# a fake lock\nMarkupSafe==3.0.4\nJinja2==3.1.4\n")
    done = _run("--lock", str(lock))
    assert done.returncode == 1, done.stdout
    assert f"{lock}:3: jinja2 3.1.4 is affected by GHSA-cpwx-vrp4-4pq7" in done.stdout
    for advisory in ("GHSA-q2x7-8rv6-6q7h", "GHSA-gmj6-6f8f-6699", "CVE-2025-27516"):
        assert advisory in done.stdout
    assert "fixed in 3.1.6" in done.stdout
    assert "markupsafe" not in done.stdout.split("audited")[0]


@pytest.mark.parametrize(
    "pin",
    ["cryptography==49.0.0", "urllib3==2.6.3", "python-multipart==0.0.9", "setuptools==65.5.0"],
)
def test_other_affected_pins_fail_too(tmp_path: Path, pin: str) -> None:
    assert _run("--lock", str(_lock(tmp_path, pin + "\n"))).returncode == 1


def test_jinja2_3_1_6_passes(tmp_path: Path) -> None:
    done = _run("--lock", str(_lock(tmp_path, "jinja2==3.1.6\n")))
    assert done.returncode == 0, done.stdout
    assert "0 finding(s)" in done.stdout


def test_the_shipped_lock_and_floors_pass_the_shipped_snapshot() -> None:
    done = _run("--lock", str(LOCK), "--floors", str(ROOT / "pyproject.toml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_floor_that_is_itself_affected_fails(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["jinja2>=3.1.4,<4"]\n')
    done = _run("--lock", str(_lock(tmp_path, "jinja2==3.1.6\n")), "--floors", str(pyproject))
    assert done.returncode == 1
    assert "floor 'jinja2>=3.1.4,<4'" in done.stdout


def test_a_malformed_lock_line_is_named_with_file_and_line(tmp_path: Path) -> None:
    lock = _lock(tmp_path, "jinja2==3.1.6\njinja2>=3\n")
    done = _run("--lock", str(lock))
    assert done.returncode == 2
    assert f"{lock}:2: expected 'name==version', got 'jinja2>=3'" in done.stderr


def test_a_malformed_snapshot_entry_is_named(tmp_path: Path) -> None:
    snapshot = tmp_path / "advisories.yaml"
    snapshot.write_text("advisories:\n  - id: X-1\n    affected: [{package: {name: a}}]\n")
    done = _run("--lock", str(_lock(tmp_path, "a==1\n")), "--advisories", str(snapshot))
    assert done.returncode == 2
    assert "advisories[0] (X-1)" in done.stderr


def test_every_snapshot_entry_has_a_fixed_release_and_reads() -> None:
    advisories = audit_deps.load_advisories(SNAPSHOT)
    assert len({a.id for a in advisories}) >= 50
    assert all(a.fixed_in() for a in advisories)


def test_osv_ranges_introduced_fixed_and_last_affected() -> None:
    events = (("introduced", Version("3.0.0")), ("fixed", Version("3.1.5")))
    assert not audit_deps._in_range(events, Version("2.11.3"))
    assert audit_deps._in_range(events, Version("3.0.0"))
    assert audit_deps._in_range(events, Version("3.1.4"))
    assert not audit_deps._in_range(events, Version("3.1.5"))
    last = (("introduced", Version("0")), ("last_affected", Version("1.2")))
    assert audit_deps._in_range(last, Version("1.2"))
    assert not audit_deps._in_range(last, Version("1.2.1"))


def test_drift_names_unlocked_and_different_packages() -> None:
    present = {"a": "1.0", "b": "2.1", "c": "3", "baton": "0"}
    lines = audit_deps.drift({"a": "1.0", "b": "2.0"}, present)
    assert lines == ["installed but not locked: c==3", "locked b==2.0 but 2.1 is installed"]


def test_the_live_audit_is_skipped_when_osv_does_not_answer(tmp_path: Path) -> None:
    done = _run("--lock", str(_lock(tmp_path, "jinja2==3.1.6\n")), "--live")
    # On this project's machines osv.dev does not resolve; where it does, pip-audit runs.
    assert done.returncode == 0, done.stdout
    assert "live audit" in done.stdout
