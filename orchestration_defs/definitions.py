"""The code location: a repository whose jobs are built lazily, by name.

Two kinds of process load it (Dagster tells them apart with its definitions load type):

- A **code server** (the webserver's, the daemon's, ``baton run``'s) *initializes* the
  location: it migrates Baton's tables, syncs the library (``baton.library.sync_library``: every
  valid file stored, every invalid one recorded with its errors) and lists one job per slug,
  the pinned ``<slug>__v<N>`` jobs and the sensors. Dagster builds every job for the snapshot.
- A **run worker** *reconstructs* it: it neither migrates nor parses the library; the job it
  runs is built from the spec stored for that job name (``baton.library.stored_job_spec``), and
  nothing else is built. So a run starts as fast with 500 definitions as with one.

Invalid files leave the rest loaded; they are listed by a job named ``baton_library_problems``
(its description shows every error; launching it fails with the same list). With
``BATON_STRICT_LIBRARY=true`` an invalid file makes the location fail to load, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from dagster import (
    Failure,
    JobDefinition,
    RepositoryData,
    RepositoryDefinition,
    ResourceDefinition,
    ScheduleDefinition,
    SensorDefinition,
    in_process_executor,
    job,
    op,
)
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)
from dagster._core.definitions.repository_definition.repository_data import CachingRepositoryData
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.execution.build_resources import wrap_resources_for_execution
from pydantic import ValidationError

from baton.library import (
    FileProblem,
    library_problems,
    prepare_database,
    stored_job_names,
    stored_job_spec,
    sync_library,
)
from baton.segments import compensated_job, compensation_job
from baton.settings import Settings, get_settings
from baton.store.service import RunStore
from orchestration_defs.compiler.compensation_job import build_compensation_job
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import default_resources
from orchestration_defs.language.models import OrchestrationSpec
from sensors.definitions import library_sensors

log = logging.getLogger(__name__)

# The name Dagster gives the repository of a ``Definitions`` object: links into the UI
# (``__repository__@baton``) stay what they were before the location became lazy.
REPOSITORY_NAME = "__repository__"
PROBLEMS_JOB = "baton_library_problems"

JobBuilder = Callable[[], JobDefinition]


def build_definitions() -> RepositoryDefinition:
    """The code location for this process: initialized in a code server, else reconstructed."""
    settings = get_settings()
    resources = wrap_resources_for_execution(default_resources())
    if _reconstructing():
        return _repository(StoredJobs(RunStore(settings.db_url), resources))
    return _initialize(settings, resources)


def _reconstructing() -> bool:
    # Dagster's run worker (and any other process rebuilding definitions that a code server
    # made, e.g. `dagster api execute_run`) loads them in RECONSTRUCTION; a code server and a
    # plain import (tests, tools) in INITIALIZATION. The context is private to Dagster.
    return DefinitionsLoadContext.get().load_type == DefinitionsLoadType.RECONSTRUCTION


def _initialize(settings: Settings, resources: Mapping[str, ResourceDefinition]) -> Any:
    prepare_database(settings)
    synced = sync_library(settings)
    newest = [item.spec for item in synced.newest]
    specs = [*newest, *pinned_specs(RunStore(settings.db_url), newest)]
    jobs: dict[str, JobBuilder] = {spec.job_name: _builder(spec, resources) for spec in specs}
    # A spec with compensable steps has its compensation job too (`<job>__compensate`).
    jobs.update(
        {
            compensation_job(spec.job_name): _compensation_builder(spec, resources)
            for spec in specs
            if spec.compensable_steps
        }
    )
    sensors = library_sensors(list(jobs))
    if synced.problems:
        jobs[PROBLEMS_JOB] = lambda: problems_job(synced.problems)
    data = CachingRepositoryData(
        jobs=jobs,
        schedules={},
        sensors={s.name: s for s in sensors},
        source_assets_by_key={},
        assets_defs_by_key={},
        asset_checks_defs_by_key={},
        top_level_resources=resources,
        utilized_env_vars={},
        unresolved_partitioned_asset_schedules={},
        component_tree=None,
    )
    return _repository(data, synced.problems)


def _repository(data: RepositoryData, problems: Sequence[FileProblem] = ()) -> RepositoryDefinition:
    description = None
    if problems:
        description = f"{len(problems)} invalid library file(s) left out; see {PROBLEMS_JOB}"
    return RepositoryDefinition(REPOSITORY_NAME, repository_data=data, description=description)


def _builder(spec: OrchestrationSpec, resources: Mapping[str, ResourceDefinition]) -> JobBuilder:
    def build() -> JobDefinition:
        return with_resources(build_job(spec), resources)

    return build


def _compensation_builder(
    spec: OrchestrationSpec, resources: Mapping[str, ResourceDefinition]
) -> JobBuilder:
    def build() -> JobDefinition:
        built = build_compensation_job(spec)
        assert built is not None  # listed only for specs with compensable steps
        return with_resources(built, resources)

    return build


def with_resources(
    job_def: JobDefinition, resources: Mapping[str, ResourceDefinition]
) -> JobDefinition:
    """``job_def`` with the location's resources bound, as ``Definitions(resources=)`` binds."""
    return job_def.with_top_level_resources({**resources, **job_def.resource_defs})


def pinned_specs(store: RunStore, newest: list[OrchestrationSpec]) -> list[OrchestrationSpec]:
    """The pinned specs (job ``<slug>__v<version>``) of older versions with unfinished runs.

    A run paused at a checkpoint resumes on the version it started on, not on whatever the
    library holds by then; once none of its runs is unfinished, the version's job goes away.
    """
    current = {(spec.organization, spec.slug): spec.version for spec in newest}
    specs = []
    for slug, version, raw in store.unfinished_versions():
        try:
            spec = OrchestrationSpec.model_validate(raw)
        except ValidationError as exc:  # stored by an older Baton whose language differed
            log.warning("cannot rebuild %s v%s for its unfinished runs: %s", slug, version, exc)
            continue
        if current.get((spec.organization, slug)) != version:
            specs.append(spec.pinned())
    return specs


def pinned_jobs(store: RunStore, newest: list[OrchestrationSpec]) -> list[JobDefinition]:
    """The jobs of ``pinned_specs``, built (for tools and tests)."""
    return [build_job(spec) for spec in pinned_specs(store, newest)]


def problems_job(problems: Sequence[FileProblem]) -> JobDefinition:
    """A job that shows the invalid library files in the Dagster UI's job list.

    Its description lists every error; launching it fails with the same list, so a click on
    it explains itself instead of doing anything.
    """
    listing = "\n".join(f"- {line}" for p in problems for line in p.lines)
    text = f"{len(problems)} library file(s) are invalid and were left out:\n{listing}"

    @op(name=f"{PROBLEMS_JOB}__report", description=text)
    def report() -> None:
        raise Failure(description=text)

    @job(
        name=PROBLEMS_JOB,
        description=text + "\n\nFix them and reload the code location (`baton library problems`).",
        tags={"baton/library": "problems"},
        executor_def=in_process_executor,
    )
    def baton_library_problems() -> None:
        report()

    return baton_library_problems


class StoredJobs(RepositoryData):
    """A run worker's repository: each job built on first request from its stored spec.

    Nothing is listed or built up front; only ``get_all_*`` (which a run worker does not call)
    reads every name from the tables.
    """

    def __init__(self, store: RunStore, resources: Mapping[str, ResourceDefinition]) -> None:
        self._store = store
        self._resources = resources
        self._jobs: dict[str, JobDefinition] = {}
        self._sensors: list[SensorDefinition] | None = None

    def get_top_level_resources(self) -> Mapping[str, ResourceDefinition]:
        return self._resources

    def get_env_vars_by_top_level_resource(self) -> Mapping[str, Any]:
        return {}

    def get_job_names(self) -> Sequence[str]:
        names = stored_job_names(self._store)
        return [*names, PROBLEMS_JOB] if library_problems(self._store) else names

    def has_job(self, job_name: str) -> bool:
        return self._find(job_name) is not None

    def get_job(self, job_name: str) -> JobDefinition:
        found = self._find(job_name)
        if found is None:
            raise DagsterInvariantViolationError(
                f"Could not find job '{job_name}': no stored definition has this job name"
            )
        return found

    def get_all_jobs(self) -> Sequence[JobDefinition]:
        return [self.get_job(name) for name in self.get_job_names()]

    def get_all_schedules(self) -> Sequence[ScheduleDefinition]:
        return []

    def get_all_sensors(self) -> Sequence[SensorDefinition]:
        if self._sensors is None:
            self._sensors = library_sensors(stored_job_names(self._store))
        return self._sensors

    def _find(self, job_name: str) -> JobDefinition | None:
        if job_name not in self._jobs:
            built = self._build(job_name)
            if built is None:
                return None
            self._jobs[job_name] = built
        return self._jobs[job_name]

    def _build(self, job_name: str) -> JobDefinition | None:
        if job_name == PROBLEMS_JOB:
            problems = library_problems(self._store)
            return problems_job(problems) if problems else None
        compensated = compensated_job(job_name)
        if compensated is not None:
            spec = stored_job_spec(self._store, compensated)
            built = build_compensation_job(spec) if spec is not None else None
            return with_resources(built, self._resources) if built is not None else None
        spec = stored_job_spec(self._store, job_name)
        return with_resources(build_job(spec), self._resources) if spec is not None else None


@cache
def _defs() -> RepositoryDefinition:
    return build_definitions()


def __getattr__(name: str) -> Any:
    # `defs` is built on first access (when Dagster loads the code location), not on import,
    # so tests and tools can import this module under their own settings.
    if name == "defs":
        return _defs()
    raise AttributeError(name)
