"""Baton's tables: SQLAlchemy models, engines and Alembic migrations."""
