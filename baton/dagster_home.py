"""The Dagster instance Baton uses: DAGSTER_HOME with a shipped dagster.yaml."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


def ensure_dagster_home(settings: Settings) -> Path:
    """Create DAGSTER_HOME with the default dagster.yaml if it has none; export it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        if DEFAULT_INSTANCE_YAML.exists():
            shutil.copyfile(DEFAULT_INSTANCE_YAML, target)
        else:
            target.write_text(_FALLBACK_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
