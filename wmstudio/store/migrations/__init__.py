"""Alembic migration scripts of the dataset store (a package so that it is installed with it)."""
