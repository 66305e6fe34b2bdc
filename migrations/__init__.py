"""Alembic migrations of Baton's tables (run them with ``baton db upgrade``)."""
