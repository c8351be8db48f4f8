"""Outbox leases: the rows a dead sender was working on are taken over within seconds; a slow live sender keeps its
rows (its leases are renewed) and nothing is sent twice. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.database import Database
from bot.models import Conversation, OutboxEntry, utcnow
from bot.outbox import LEASE_SECONDS, Outbox
from tests.db import database_url, engine  # noqa: F401  (fixtures)


class SlowChannel:
    """A push channel whose every call takes ``delay`` seconds; remembers who sent what."""

    name = "telegram"

    def __init__(self, delay: float, sent: list[tuple[str, int]], sender: str) -> None:
        self.delay, self.sent, self.sender = delay, sent, sender

    def render(self, session: Session, reply: Any) -> list[dict[str, Any]]:
        return [{"text": reply.text}]

    async def deliver(self, recipient: str, body: dict[str, Any]) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append((self.sender, body["n"]))


def add_rows(engine: Engine, n: int) -> None:  # noqa: F811
    with Session(engine) as session:
        conv = Conversation(key="telegram:42", channel="telegram")
        session.add(conv)
        session.flush()
        session.add_all(OutboxEntry(channel="telegram", conversation_id=conv.id, recipient="42", body={"n": i})
                        for i in range(n))
        session.commit()


async def run_for(outbox: Outbox, seconds: float) -> None:
    task = asyncio.create_task(outbox.run())
    await asyncio.sleep(seconds)
    task.cancel()
    await outbox.drain(grace=5)


def statuses(engine: Engine) -> list[str]:  # noqa: F811
    with Session(engine) as session:
        return list(session.scalars(select(OutboxEntry.status).order_by(OutboxEntry.id)))


def test_the_default_lease_is_short() -> None:
    assert LEASE_SECONDS <= 15  # was 120 s: how long a killed gateway's replies waited


async def test_rows_of_a_dead_sender_are_taken_over_after_the_lease(engine: Engine) -> None:  # noqa: F811
    add_rows(engine, 2)
    db = Database(engine)
    sent: list[tuple[str, int]] = []
    dead = Outbox(db, {"telegram": SlowChannel(0, sent, "dead")}, lease=1.5)  # type: ignore[dict-item]
    claimed = await db.run(lambda s: dead._claim(s, limit=10))  # claimed, then the process is killed
    assert [c.body["n"] for c in claimed] == [0]  # one chat: its oldest row only
    live = Outbox(db, {"telegram": SlowChannel(0, sent, "live")}, lease=1.5)  # type: ignore[dict-item]
    started = asyncio.get_running_loop().time()
    task = asyncio.create_task(live.run())
    while len(sent) < 2:
        await asyncio.sleep(0.05)
        assert asyncio.get_running_loop().time() - started < 6, sent
    took = asyncio.get_running_loop().time() - started
    task.cancel()
    await live.drain()
    assert sent == [("live", 0), ("live", 1)]
    assert 1.0 < took < 4.0
    assert statuses(engine) == ["sent", "sent"]


async def test_a_slow_live_sender_keeps_its_row(engine: Engine) -> None:  # noqa: F811
    add_rows(engine, 1)
    db = Database(engine)
    sent: list[tuple[str, int]] = []
    slow = Outbox(db, {"telegram": SlowChannel(3.5, sent, "slow")}, lease=1.0)  # type: ignore[dict-item]
    other = Outbox(db, {"telegram": SlowChannel(0, sent, "other")}, lease=1.0)  # type: ignore[dict-item]
    slow_task = asyncio.create_task(slow.run())
    await asyncio.sleep(0.3)  # the slow sender has claimed the row and is in its long call
    await run_for(other, 4.5)  # a replica polling all along, well past the 1 s lease
    slow_task.cancel()
    await slow.drain()
    assert sent == [("slow", 0)]
    assert statuses(engine) == ["sent"]
    with Session(engine) as session:
        row = session.scalars(select(OutboxEntry)).one()
        assert row.attempts == 1 and row.leased_until is None


async def test_renewal_leaves_recorded_rows_alone(engine: Engine) -> None:  # noqa: F811
    add_rows(engine, 2)
    db = Database(engine)
    outbox = Outbox(db, {}, lease=60)
    with Session(engine) as session:
        first, second = session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)).all()
        first.leased_until = utcnow() + dt.timedelta(seconds=1)  # in flight here
        second.status = "sent"  # recorded a moment ago
        ids = [first.id, second.id]
        session.commit()
    assert await db.run(lambda s: outbox._renew(s, ids)) == 1
    with Session(engine) as session:
        first, second = session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)).all()
        assert first.leased_until is not None and second.leased_until is None
        leased = first.leased_until if first.leased_until.tzinfo else first.leased_until.replace(tzinfo=dt.UTC)
        assert leased > utcnow() + dt.timedelta(seconds=50)
