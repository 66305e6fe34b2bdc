"""Dagster's status of segments, by Dagster run id, for the run tree (``baton.lineage``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Dagster's filter takes a list of ids; a tree of many children is asked in slices.
BATCH = 500


def segment_statuses(instance: DagsterInstance, dagster_run_ids: Sequence[str]) -> dict[str, str]:
    """``{dagster_run_id: status}`` (``QUEUED``, ``STARTED``, ``SUCCESS``, ...) of the runs the
    instance holds; ids it does not hold are left out."""
    from dagster import RunsFilter

    found: dict[str, str] = {}
    ids = list(dict.fromkeys(dagster_run_ids))
    for start in range(0, len(ids), BATCH):
        for run in instance.get_runs(RunsFilter(run_ids=ids[start : start + BATCH])):
            found[run.run_id] = run.status.value
    return found
