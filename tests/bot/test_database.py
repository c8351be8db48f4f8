"""The gateway's Database on PostgreSQL without pre-ping: a dead pooled connection costs one silent retry, never a
second run of work that may have been committed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot.database import Database
from dvcbot.db import driver_url, make_engine
from tests.db import _pg_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(postgres_server_url: str) -> Iterator[str]:
    yield from _pg_database(postgres_server_url)


def _kill_backends(url: str) -> int:
    """What a PostgreSQL restart does to the pool: every connection to the database is closed by the server."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(driver_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name}).scalar()
    admin.dispose()
    return int(killed or 0)


async def test_a_dead_pooled_connection_is_retried_once_on_a_new_one(pg_url: str) -> None:
    engine = make_engine(pg_url, pre_ping=False)
    db = Database(engine)
    runs = 0

    def backend(session: Session) -> int:
        nonlocal runs
        runs += 1
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())

    first = await db.run(backend)
    assert _kill_backends(pg_url) == 1  # the pooled connection
    second = await db.run(backend)
    assert second != first and runs == 3  # the first try on the dead connection, then a new one
    engine.dispose()


async def test_work_that_reached_its_commit_is_not_run_again(pg_url: str) -> None:
    engine = make_engine(pg_url, pre_ping=False)
    db = Database(engine)
    await db.run(lambda s: (s.execute(text("CREATE TABLE t (n int)")), s.commit()))
    runs = 0

    def insert_twice(session: Session) -> None:
        nonlocal runs
        runs += 1
        session.execute(text("INSERT INTO t VALUES (1)"))
        session.commit()  # landed
        _kill_backends(pg_url)  # the connection dies afterwards
        session.execute(text("INSERT INTO t VALUES (2)"))
        session.commit()

    with pytest.raises(DBAPIError):
        await db.run(insert_twice)
    assert runs == 1
    rows = await db.run(lambda s: s.execute(text("SELECT n FROM t")).scalars().all())
    assert rows == [1]
    engine.dispose()


async def test_units_of_work_under_load_reuse_as_many_connections_as_workers(pg_url: str) -> None:
    """More units of work than workers wait their turn; the connections they use stay open for the next ones (the
    pool used to open and close a PostgreSQL connection for most units of work under load)."""
    engine = make_engine(pg_url, pre_ping=False, pool_size=4)
    db = Database(engine, workers=4)

    def unit(session: Session) -> int:
        pid = int(session.execute(text("SELECT pg_backend_pid() FROM pg_sleep(0.02)")).scalar_one())
        session.commit()
        return pid

    try:
        first = await asyncio.gather(*(db.run(unit) for _ in range(40)))
        second = await asyncio.gather(*(db.run(unit) for _ in range(40)))
    finally:
        engine.dispose()
    assert len(set(first)) <= 4
    assert set(second) <= set(first)  # the same server processes: no connection was opened again


async def test_autocommit_units_run_each_statement_on_its_own_and_leave_the_pool_transactional(pg_url: str) -> None:
    engine = make_engine(pg_url, pre_ping=False, pool_size=1)
    db = Database(engine, workers=1)  # one connection: both kinds of unit share it

    def two_clocks(session: Session) -> bool:
        """Whether two statements saw the same transaction start (``now()``)."""
        first = session.execute(text("SELECT now() FROM pg_sleep(0.01)")).scalar_one()
        second = session.execute(text("SELECT now()")).scalar_one()
        return bool(first == second)

    try:
        assert await db.run(two_clocks) is True
        assert await db.run(two_clocks, autocommit=True) is False
        assert await db.run(two_clocks) is True  # the connection went back to the pool in its usual mode
    finally:
        engine.dispose()
