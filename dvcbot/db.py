"""Database plumbing shared by the gateway and the action server: one declarative base, an engine factory, the
schema (Alembic migrations in :mod:`dvcbot.migrations`)."""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, sessionmaker

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every table; the gateway and the actions each own their own tables."""

    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, *, pre_ping: bool = True, pool_size: int = 5) -> Engine:
    """Build an engine; for SQLite, create the file's folder and turn on WAL and foreign keys.

    ``pre_ping`` checks each pooled connection before use (one more round trip per unit of work); the gateway turns
    it off and retries a unit of work once when its connection turned out dead (:class:`bot.database.Database`).
    ``pool_size`` connections stay open; up to as many again are opened when needed, and closed when given back."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(driver_url(url), pool_pre_ping=pre_ping, pool_size=pool_size, max_overflow=pool_size)


def driver_url(url: str) -> str:
    """``postgresql://`` URLs name psycopg 3 as their driver (SQLAlchemy would pick psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def session_factory(engine: Engine) -> sessionmaker:  # type: ignore[type-arg]
    return sessionmaker(engine, expire_on_commit=False)


# Modules that declare tables; importing them registers their tables on ``Base.metadata``.
TABLE_MODULES = (
    "actions.catalog.models",
    "actions.catalog.directory",
    "actions.dossiers.models",
    "actions.editor.models",
    "bot.models",
)


def load_models() -> MetaData:
    """Import every module that declares tables; their tables are then all on ``Base.metadata``."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return Base.metadata


def create_schema(engine: Engine) -> None:
    """Bring the database to the newest migration (idempotent, safe to run from several processes at once).

    A database made before migrations existed is adopted first; see :mod:`dvcbot.migrations`.
    """
    from dvcbot.migrations import upgrade

    upgrade(engine)
