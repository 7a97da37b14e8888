"""Engines, sessions and transactions for the store, built from the settings.

Every write goes through :func:`transaction`: the whole block commits together or not at all,
so a crash in the middle of a batch never leaves half of it in the database. SQLite gets the
pragmas that make it a sound embedded store (foreign keys enforced, WAL so the API can read while
a curation run writes, a busy timeout instead of instant "database is locked" errors).

Read-modify-write blocks (a curation run recording flags, a reviewer's decision, a Label Studio
pull) take the write lock up front: ``transaction(immediate=True)`` or :func:`lock_for_writing`
as a block's first statement. On SQLite that is ``BEGIN IMMEDIATE``: a second writer waits (busy
timeout) instead of reading a snapshot, then failing with "database is locked" when it tries to
write, or, worse, writing over a decision committed in between. Plain reads stay ``BEGIN``
(deferred), so the dashboard is never blocked by a long run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from wmstudio.settings import get_settings

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def resolve_url(url: str | None = None) -> str:
    """The given URL, or the store URL from the settings (SQLite in the state folder by default)."""
    return url or get_settings().resolved_database_url


def masked(url: str) -> str:
    """The URL with any password hidden, for logs and ``wmstudio store status``."""
    return make_url(url).render_as_string(hide_password=True)


IMMEDIATE = "sqlite_immediate"  # execution option: this connection's transaction takes the write lock at BEGIN


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver's own implicit BEGIN is replaced by _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """Emit BEGIN ourselves (SQLAlchemy's recipe for pysqlite), IMMEDIATE when the block writes."""
    immediate = connection.get_execution_options().get(IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process (engines own connection pools; they are meant to be shared)."""
    url = resolve_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, pool_pre_ping=True)
            if parsed.get_backend_name() == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
                event.listen(engine, "begin", _sqlite_begin)
            _engines[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before forking workers)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def ensure_schema(url: str | None = None) -> None:
    """Upgrade the store to the newest migration once per process (cheap when already there)."""
    url = resolve_url(url)
    if url in _migrated:
        return
    from wmstudio.store.migrate import upgrade_to_head

    upgrade_to_head(url)
    _migrated.add(url)


def session_factory(url: str | None = None, migrate: bool | None = None) -> sessionmaker[Session]:
    """A session factory for the store; by default the schema is upgraded first.

    ``expire_on_commit=False`` keeps loaded rows readable after the transaction ends, which the
    CLI relies on to print what it just wrote.
    """
    url = resolve_url(url)
    if get_settings().store_auto_migrate if migrate is None else migrate:
        ensure_schema(url)
    return sessionmaker(get_engine(url), expire_on_commit=False)


def lock_for_writing(session: Session) -> None:
    """Take the store's write lock now; must come before the session's first statement.

    SQLite: the transaction starts with ``BEGIN IMMEDIATE``. PostgreSQL needs no table lock
    (rows that are read to be rewritten are locked with ``SELECT ... FOR UPDATE`` instead).
    """
    session.connection(execution_options={IMMEDIATE: True})


@contextmanager
def transaction(url: str | None = None, migrate: bool | None = None, immediate: bool = False) -> Iterator[Session]:
    """A session whose work commits at the end of the block, or rolls back entirely on any error.

    ``immediate``: the block reads what it then rewrites, so it holds the write lock from the start.
    """
    factory = session_factory(url, migrate)
    with factory.begin() as session:
        if immediate:
            lock_for_writing(session)
        yield session
