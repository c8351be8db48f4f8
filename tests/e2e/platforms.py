"""Waiting for the gateway to finish answering a platform update: nothing pending in intake or outbox."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.models import InboundUpdate, OutboxEntry


def pending(engine: Engine) -> int:
    with Session(engine) as session:
        inbound = session.scalar(select(func.count()).where(InboundUpdate.status == "pending"))
        outbox = session.scalar(select(func.count()).where(OutboxEntry.status == "pending"))
        return int(inbound or 0) + int(outbox or 0)


def settle(engine: Engine, arrived: Callable[[], bool], seconds: float = 60.0) -> None:
    """Wait until ``arrived()`` and nothing is left to process or send (the stack answers in the background)."""
    deadline = time.monotonic() + seconds
    while not (arrived() and pending(engine) == 0):
        assert time.monotonic() < deadline, "the gateway did not finish answering in time"
        time.sleep(0.1)
