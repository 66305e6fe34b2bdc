"""The sensors' Definitions (approval and webhook sensors join in later issues)."""

from __future__ import annotations

from dagster import Definitions

from sensors.run_failure import baton_run_failure_sensor


def sensor_definitions() -> Definitions:
    """All of Baton's sensors."""
    return Definitions(sensors=[baton_run_failure_sensor])
