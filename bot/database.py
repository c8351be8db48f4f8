"""The gateway's access to its database: synchronous SQLAlchemy sessions run in worker threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from dvcbot.db import session_factory

T = TypeVar("T")
# Units of work at once, each on its own pooled connection (make_engine(pool_size=WORKERS)). anyio allows 40 worker
# threads, and SQLAlchemy keeps 5 connections: under load the gateway opened and closed a PostgreSQL connection (a
# new server process) for most units of work beyond those, about 5 a second in make bench.
WORKERS = 16


class Database:
    """Runs short units of work, each in its own session, without blocking the event loop.

    The engine need not ping connections before use (``make_engine(url, pre_ping=False)``: one round trip less per
    unit of work): a unit of work that finds its connection dead (PostgreSQL restarted) is run once more, on a new
    connection, if it had not tried to commit yet (whatever it did is then surely rolled back); SQLAlchemy has
    invalidated the rest of the pool by then too. A connection lost during a commit is not retried: the commit may
    have landed.
    """

    def __init__(self, engine: Engine, workers: int = WORKERS) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)
        event.listen(self.sessions, "before_commit", _committing)
        self._workers = anyio.CapacityLimiter(workers)
        # the same pool's connections without a transaction around each statement
        self.reads: sessionmaker[Session] = session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))

    async def run(self, fn: Callable[[Session], T], *, autocommit: bool = False) -> T:
        """Call ``fn`` with a fresh session in a worker thread; ``fn`` commits what it wants kept.

        ``autocommit=True`` runs each statement on its own, outside a transaction: for reads that need no single
        snapshot (two round trips fewer, ``BEGIN`` and ``ROLLBACK``, and less work for the server)."""
        sessions = self.reads if autocommit else self.sessions

        def work() -> T:
            for attempt in (1, 2):
                with sessions() as session:
                    try:
                        return fn(session)
                    except DBAPIError as exc:
                        if attempt == 2 or not exc.connection_invalidated or session.info.get("committing"):
                            raise
            raise AssertionError("unreachable")

        return await anyio.to_thread.run_sync(work, limiter=self._workers)


def _committing(session: Session) -> None:
    session.info["committing"] = True


def db_of(request: Request) -> Database:
    """The gateway's :class:`Database`, as the app's lifespan put it on ``app.state``."""
    db: Database = request.app.state.db
    return db
