"""The API's view of Dagster: launch a run, list a run's segments, cancel, check reachability.

Launching goes through the instance exactly as ``baton run`` does (a code server loads the
code location), so API-launched runs are ordinary Dagster runs in the UI.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from baton.dagster_home import ensure_dagster_home
from baton.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

log = logging.getLogger(__name__)
RUN_TAG = "baton/run_id"


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


class DagsterGateway:
    """One Dagster instance for the API process, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._instance: DagsterInstance | None = None
        self._open_lock = threading.Lock()
        # Launching points this process's stdout/stderr at a log file while the code server
        # starts (see baton.launch.children_output_to): one launch at a time.
        self._launch_lock = threading.Lock()

    def instance(self) -> DagsterInstance:
        with self._open_lock:
            if self._instance is None:
                from dagster import DagsterInstance  # a second to import: only when needed

                ensure_dagster_home(self.settings)
                self._instance = DagsterInstance.get()
            return self._instance

    def ping(self) -> None:
        """Raise if Dagster's run storage cannot be read."""
        self.instance().get_run_records(limit=1)

    def launch(
        self, *, job_name: str, run_config: Mapping[str, Any], tags: Mapping[str, str]
    ) -> str:
        """Launch a run of ``job_name``; returns the Dagster run id.

        Raises:
            LaunchError: the code location failed to load or has no such job.
        """
        from baton.launch import launch_job

        with self._launch_lock:
            return launch_job(
                self.instance(), self.settings, job_name=job_name, run_config=run_config, tags=tags
            )

    def segments(self, run_id: str) -> list[dict[str, Any]]:
        """The Dagster runs tagged with this orchestration run, oldest first."""
        from dagster import RunsFilter

        records = self.instance().get_run_records(RunsFilter(tags={RUN_TAG: run_id}))
        return [
            {
                "dagster_run_id": r.dagster_run.run_id,
                "status": r.dagster_run.status.value,
                "started_at": _iso(r.start_time),
                "finished_at": _iso(r.end_time),
                "parent_run_id": r.dagster_run.parent_run_id,
                "url": f"{self.settings.dagster.ui_url.rstrip('/')}/runs/{r.dagster_run.run_id}",
            }
            for r in sorted(records, key=lambda rec: rec.create_timestamp)
        ]

    def cancel(self, dagster_run_id: str) -> bool:
        """Cancel a queued or running Dagster run; False if it had already finished."""
        instance = self.instance()
        run = instance.get_run_by_id(dagster_run_id)
        if run is None or run.is_finished:
            return False
        return bool(instance.run_coordinator.cancel_run(dagster_run_id))

    def close(self) -> None:
        with self._open_lock:
            if self._instance is not None:
                self._instance.dispose()
                self._instance = None
