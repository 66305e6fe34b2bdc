"""The code location: loads the library, compiles it, merges the sensors. Nothing else."""

from __future__ import annotations

from dagster import Definitions

from agent_resources.registry import agent_resources
from baton.settings import get_settings
from orchestration_defs.compiler.job import build_job
from orchestration_defs.compiler.ops import STORE_KEY
from orchestration_defs.compiler.resources import BatonStoreResource
from baton.library import load_and_register, prepare_database
from sensors.definitions import sensor_definitions


def build_definitions() -> Definitions:
    """Jobs for the newest version of every library definition, with resources and sensors."""
    settings = get_settings()
    prepare_database(settings)
    jobs = [build_job(item.spec) for item in load_and_register(settings)]
    core = Definitions(jobs=jobs, resources={STORE_KEY: BatonStoreResource(), **agent_resources()})
    return Definitions.merge(core, sensor_definitions())


defs = build_definitions()
