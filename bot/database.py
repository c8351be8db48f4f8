"""The gateway's access to its database: synchronous SQLAlchemy sessions run in worker threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from dvcbot.db import session_factory

T = TypeVar("T")


class Database:
    """Runs short units of work, each in its own session, without blocking the event loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions: sessionmaker[Session] = session_factory(engine)

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Call ``fn`` with a fresh session in a worker thread; ``fn`` commits what it wants kept."""

        def work() -> T:
            with self.sessions() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(work)


def db_of(request: Request) -> Database:
    """The gateway's :class:`Database`, as the app's lifespan put it on ``app.state``."""
    db: Database = request.app.state.db
    return db
