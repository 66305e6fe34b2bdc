"""The executor every compiled job runs its steps with, chosen by ``BATON_EXECUTION__EXECUTOR``.

One owner: the orchestration jobs and the compensation jobs take their executor from here.
"""

from __future__ import annotations

import importlib
from typing import cast

from dagster import ExecutorDefinition, in_process_executor

from baton.settings import ExecutionSettings, get_settings


def job_executor(
    settings: ExecutionSettings | None = None, concurrency: int | None = None
) -> ExecutorDefinition:
    """The executor of a compiled job (default: the settings' ``execution`` group).

    ``concurrency`` is the orchestration's own limit of steps at once (threaded executor).
    """
    settings = settings or get_settings().execution
    if settings.executor == "in_process":
        return in_process_executor
    if settings.executor == "threaded":
        return _threaded_executor(concurrency or settings.max_concurrency)
    if settings.executor == "celery":
        return _celery_executor(settings)
    if settings.executor == "k8s":
        return _k8s_executor()
    raise ValueError(f"unknown executor {settings.executor!r}")  # pragma: no cover


def _threaded_executor(max_concurrent: int) -> ExecutorDefinition:
    """Baton's threaded executor (threaded_executor.py) with at most ``max_concurrent`` steps."""
    from orchestration_defs.compiler.threaded_executor import threaded_executor

    return threaded_executor.configured({"max_concurrent": max_concurrent}, name="threaded")


def _celery_executor(settings: ExecutionSettings) -> ExecutorDefinition:
    """dagster-celery's executor on the settings' broker and queue (``baton.celery_worker``).

    Configured here rather than in run config: the broker URL is a secret, and the run
    config is stored with every Dagster run.
    """
    from baton.celery_worker import INSTALL_HINT, executor_config

    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    return celery_executor.configured(executor_config(settings), name="celery")


K8S_HINT = (
    "BATON_EXECUTION__EXECUTOR=k8s needs dagster-k8s of dagster's release in the image: "
    "pip install dagster-k8s==0.29.27 (deploy/k8s/dagster.yaml)"
)


def _k8s_executor() -> ExecutorDefinition:
    """dagster-k8s's ``k8s_job_executor``: a Kubernetes Job per step (deploy/k8s/).

    Its image, env ConfigMaps and Secrets come from the K8sRunLauncher of the instance.
    """
    # Imported by name: dagster-k8s is not installed by default (nor here), so mypy has no stub.
    try:
        module = importlib.import_module("dagster_k8s")
    except ImportError as exc:
        raise RuntimeError(K8S_HINT) from exc
    return cast(ExecutorDefinition, module.k8s_job_executor)
