"""The Dagster instance Baton uses: DAGSTER_HOME with a shipped dagster.yaml."""

from __future__ import annotations

import os
from pathlib import Path

from baton.filelock import file_lock
from baton.settings import PACKAGE_ROOT, Settings

DEFAULT_INSTANCE_YAML = PACKAGE_ROOT / "deploy" / "dagster.yaml"

_FALLBACK_YAML = """\
# Embedded default: SQLite storage in this folder, telemetry off (no network here).
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 10
    dequeue_interval_seconds: 1
run_launcher:
  module: baton.warm_launcher
  class: WarmRunLauncher
"""


# Homes whose storage this process has already created (or found) under the lock.
_READY: set[Path] = set()
LOCK_FILE = ".baton-first-start.lock"


def ensure_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with the default dagster.yaml and Dagster's storage; export it.

    Dagster creates its SQLite storage (tables, Alembic stamp) the first time an instance is
    opened, and two processes doing that at once fail ("table runs already exists"). So the
    first call of each process opens the instance once under a lock in DAGSTER_HOME: on a
    fresh folder one process creates the storage and the others then find it.
    """
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    if home not in _READY:
        with file_lock(home / LOCK_FILE, purpose="creating Dagster's storage"):
            _write_instance_yaml(home / "dagster.yaml")
            _create_storage()
        _READY.add(home)
    return home


def write_default_instance_yaml(home: Path) -> None:
    """Write the default dagster.yaml into ``home`` if it has none, without opening it."""
    home.mkdir(parents=True, exist_ok=True)
    _write_instance_yaml(home / "dagster.yaml")


def _write_instance_yaml(target: Path) -> None:
    """The default dagster.yaml, if there is none; written whole (no half file is ever read)."""
    if target.exists():
        return
    text = DEFAULT_INSTANCE_YAML.read_text() if DEFAULT_INSTANCE_YAML.exists() else _FALLBACK_YAML
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, target)


def _create_storage() -> None:
    # Opening the instance creates (or checks) its run, event log and schedule storage.
    from dagster import DagsterInstance

    with DagsterInstance.get():
        pass
