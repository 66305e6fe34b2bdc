"""Baton core: settings, the state store, the run state machine and the CLI.

This package never imports job building or sensors; it launches runs through the Dagster
instance by job name (see docs/architecture.md).
"""

__version__ = "0.1.0"
