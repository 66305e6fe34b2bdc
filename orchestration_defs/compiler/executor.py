"""The executor every compiled job runs its steps with, chosen by ``BATON_EXECUTION__EXECUTOR``.

One owner: the orchestration jobs and the compensation jobs take their executor from here.
"""

from __future__ import annotations

from dagster import ExecutorDefinition, in_process_executor

from baton.settings import ExecutionSettings, get_settings


def job_executor(settings: ExecutionSettings | None = None) -> ExecutorDefinition:
    """The executor of a compiled job (default: the settings' ``execution`` group)."""
    settings = settings or get_settings().execution
    if settings.executor == "in_process":
        return in_process_executor
    raise ValueError(f"unknown executor {settings.executor!r}")  # pragma: no cover
