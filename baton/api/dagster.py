"""The API's view of Dagster: launch a segment, list a run's segments, cancel, reachability.

Launching goes through the instance exactly as ``baton run`` does (a code server loads the
code location), so API-launched runs are ordinary Dagster runs in the UI. The API keeps its
code server between launches, so a decision resumes its run without waiting for one to start.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from baton.dagster_home import ensure_dagster_home
from baton.segments import RUN_TAG, SegmentPlan
from baton.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from baton.launch import SegmentLauncher

log = logging.getLogger(__name__)


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


class DagsterGateway:
    """One Dagster instance for the API process, opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._instance: DagsterInstance | None = None
        self._launcher: SegmentLauncher | None = None
        self._closed = False
        self._open_lock = threading.Lock()

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

    def warm(self) -> None:
        """Open the instance, its run launcher and the code server ahead of the first launch."""
        try:
            instance = self.instance()
            _ = instance.run_launcher  # the warm launcher starts its zygote when first touched
            self._segment_launcher(instance).warm()
        except Exception as exc:  # a cold first launch is slower, not broken
            log.warning("could not prewarm Dagster: %s", exc)

    def _segment_launcher(self, instance: DagsterInstance) -> SegmentLauncher:
        from baton.launch import SegmentLauncher

        with self._open_lock:
            if self._closed:
                raise RuntimeError("the API is shutting down")
            if self._launcher is None:
                self._launcher = SegmentLauncher(instance, self.settings, keep=True)
            return self._launcher

    def launch(self, segment: SegmentPlan) -> str:
        """Launch a segment (``baton.lifecycle.Launcher``); returns the Dagster run id.

        Raises:
            LaunchError: the code location failed to load or has no such job.
        """
        return self._segment_launcher(self.instance()).launch(segment)

    def settle(
        self, run_id: uuid.UUID, status: str, *, last_dagster_run_id: str | None, reason: str
    ) -> None:
        """Show an ended run's true status on its segments (``baton.dagster_status``)."""
        from baton.dagster_status import settle_run

        settle_run(
            self.instance(), run_id, status, last_dagster_run_id=last_dagster_run_id, reason=reason
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

    def statuses(self, dagster_run_ids: Sequence[str]) -> dict[str, str]:
        """Dagster's status of each segment it holds (``baton.segment_status``)."""
        from baton.segment_status import segment_statuses

        return segment_statuses(self.instance(), dagster_run_ids)

    def close(self) -> None:
        with self._open_lock:
            self._closed = True
            if self._launcher is not None:
                self._launcher.close()
                self._launcher = None
            if self._instance is not None:
                self._instance.dispose()
                self._instance = None
