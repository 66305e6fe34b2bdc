"""Turns orchestration specs into Dagster jobs (the one place that knows all layers)."""

from orchestration_defs.compiler.job import build_job

__all__ = ["build_job"]
