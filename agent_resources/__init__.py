"""Agents as Dagster resources. ``catalog`` is importable without Dagster."""
