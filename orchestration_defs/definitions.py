"""The code location: loads the library, compiles it, merges the sensors. Nothing else."""

from __future__ import annotations

from functools import cache
from typing import Any

from dagster import Definitions

from baton.library import load_and_register, prepare_database
from baton.settings import get_settings
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.resources import default_resources
from sensors.definitions import sensor_definitions


def build_definitions() -> Definitions:
    """Jobs for the newest version of every library definition, with resources and sensors."""
    settings = get_settings()
    prepare_database(settings)
    jobs = [build_job(item.spec) for item in load_and_register(settings)]
    core = Definitions(jobs=jobs, resources=default_resources())
    return Definitions.merge(core, sensor_definitions(jobs))


@cache
def _defs() -> Definitions:
    return build_definitions()


def __getattr__(name: str) -> Any:
    # `defs` is built on first access (when Dagster loads the code location), not on import,
    # so tests and tools can import this module under their own settings.
    if name == "defs":
        return _defs()
    raise AttributeError(name)
