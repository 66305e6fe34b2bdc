"""Orchestration definitions: the YAML language (``language``) and its Dagster compiler.

``orchestration_defs.language`` imports neither Dagster nor Baton's store, so the CLI's
``validate``, the API and editors can use it alone. ``orchestration_defs.compiler`` and
``orchestration_defs.definitions`` are the one place that knows Dagster, agents and the store.
"""
