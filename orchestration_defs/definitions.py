"""The code location: loads the library, compiles it, merges the sensors. Nothing else."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from dagster import Definitions, JobDefinition
from pydantic import ValidationError

from baton.library import load_and_register, prepare_database
from baton.settings import get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import default_resources
from orchestration_defs.language.models import OrchestrationSpec
from sensors.definitions import sensor_definitions

log = logging.getLogger(__name__)


def build_definitions() -> Definitions:
    """Jobs for the newest version of every library definition, plus a pinned job for each
    older version that unfinished runs started on; with resources and sensors."""
    settings = get_settings()
    prepare_database(settings)
    newest = [item.spec for item in load_and_register(settings)]
    jobs = [build_job(spec) for spec in newest]
    jobs += pinned_jobs(RunStore(settings.db_url), newest)
    core = Definitions(jobs=jobs, resources=default_resources())
    return Definitions.merge(core, sensor_definitions(jobs))


def pinned_jobs(store: RunStore, newest: list[OrchestrationSpec]) -> list[JobDefinition]:
    """Jobs named ``<slug>__v<version>`` for older versions with unfinished runs.

    A run paused at a checkpoint resumes on the version it started on, not on whatever the
    library holds by then; once none of its runs is unfinished, the version's job goes away.
    """
    current = {(spec.organization, spec.slug): spec.version for spec in newest}
    jobs = []
    for slug, version, raw in store.unfinished_versions():
        try:
            spec = OrchestrationSpec.model_validate(raw)
        except ValidationError as exc:  # stored by an older Baton whose language differed
            log.warning("cannot rebuild %s v%s for its unfinished runs: %s", slug, version, exc)
            continue
        if current.get((spec.organization, slug)) != version:
            jobs.append(build_job(spec.pinned()))
    return jobs


@cache
def _defs() -> Definitions:
    return build_definitions()


def __getattr__(name: str) -> Any:
    # `defs` is built on first access (when Dagster loads the code location), not on import,
    # so tests and tools can import this module under their own settings.
    if name == "defs":
        return _defs()
    raise AttributeError(name)
