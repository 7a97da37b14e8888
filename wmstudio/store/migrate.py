"""Alembic migrations, driven from code so no ``alembic.ini`` is needed at run time.

``wmstudio store upgrade``, the tests and :func:`wmstudio.store.session.ensure_schema` all call
:func:`upgrade_to_head`; developers can still use the ``alembic`` command with
``wmstudio/store/alembic.ini`` to write new revisions (``--autogenerate`` compares the models).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from wmstudio.store.session import get_engine, resolve_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 0x776D7374  # "wmst": PostgreSQL advisory lock held while migrating


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", resolve_url(url).replace("%", "%%"))
    return config


def upgrade_to_head(url: str | None = None) -> str | None:
    """Apply every pending migration in one transaction; returns the revision now current."""
    config = alembic_config(url)
    with get_engine(url).begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several pods may start at once: one migrates, the others wait and then find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return current_revision(url)


def current_revision(url: str | None = None) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with the code."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
