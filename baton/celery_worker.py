"""Steps on Celery workers (dagster-celery): the executor's config and the workers' app.

With ``BATON_EXECUTION__EXECUTOR=celery`` the run worker of a segment sends each step to the
Celery queue ``BATON_EXECUTION__CELERY_QUEUE``; a worker (``baton celery-worker``) runs it with
dagster-celery's ``execute_plan`` task: it rebuilds the job from the code pointer the run
worker sent (Baton's lazy code location, built from the spec stored in ``BATON_DATABASE_URL``)
and writes its events to the instance the run worker named. Both sides build their Celery app
from the same settings here, so the broker URL (a secret) is read from the environment and is
never written to a file, a log line or the run's config.

dagster-celery is an optional dependency (``pip install 'baton[celery]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baton.settings import ExecutionSettings, get_settings

if TYPE_CHECKING:
    from celery import Celery

INSTALL_HINT = (
    "BATON_EXECUTION__EXECUTOR=celery needs dagster-celery: pip install 'baton[celery]' "
    "(or `make install`, which installs it)"
)


class CeleryUnavailable(RuntimeError):
    """dagster-celery is not installed."""


def executor_config(settings: ExecutionSettings) -> dict[str, Any]:
    """The ``celery_executor`` config of the settings: broker, backend and queue."""
    return {
        "broker": settings.celery_broker.get_secret_value(),
        "backend": settings.celery_backend.get_secret_value(),
        # dagster-celery sends a step to the app's default queue unless the step has a
        # ``dagster-celery/queue`` tag; Baton's steps have none.
        "config_source": {"task_default_queue": settings.celery_queue},
    }


def celery_app(settings: ExecutionSettings | None = None) -> Celery:
    """The Celery app of the workers, with dagster-celery's ``execute_plan`` task.

    Raises:
        CeleryUnavailable: dagster-celery is not installed.
    """
    settings = settings or get_settings().execution
    try:
        from dagster_celery.executor import CeleryExecutor
        from dagster_celery.make_app import make_app
        from dagster_celery.tasks import create_task
    except ImportError as exc:
        raise CeleryUnavailable(INSTALL_HINT) from exc
    app = make_app(CeleryExecutor.for_cli(**executor_config(settings)).app_args())
    create_task(app)
    return app


def worker_argv(
    settings: ExecutionSettings,
    *,
    name: str,
    concurrency: int,
    pool: str,
    loglevel: str,
) -> list[str]:
    """The ``celery worker`` arguments of one Baton worker on the settings' queue."""
    return [
        "worker",
        f"--queues={settings.celery_queue}",
        f"--hostname={name}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        # One step at a time per process: a prefetched step would wait behind a long agent
        # call while another worker sits idle.
        "--prefetch-multiplier=1",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


def run_worker(*, name: str, concurrency: int, pool: str, loglevel: str) -> None:
    """Run one Celery worker in this process until it is stopped (SIGTERM: warm shutdown).

    Raises:
        CeleryUnavailable: dagster-celery is not installed.
    """
    settings = get_settings().execution
    app = celery_app(settings)
    app.worker_main(
        worker_argv(settings, name=name, concurrency=concurrency, pool=pool, loglevel=loglevel)
    )


__all__ = ["CeleryUnavailable", "celery_app", "executor_config", "run_worker", "worker_argv"]
