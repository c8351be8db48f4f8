"""Intake: every inbound update is stored before it is acknowledged, then processed once, in order.

A channel calls :meth:`Intake.store` with the platform's own id of the update; the unique constraint on
``(channel, platform_id)`` recognises a redelivery. Processing happens per conversation under the conversation
lock (:mod:`bot.locks`): whoever holds it works through *all* pending updates of that conversation in the
platform's order, so a webhook landing on any replica, a restart or a retry cannot reorder or repeat them. Updates
left pending by a process that died are picked up at start-up and by a periodic sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot import metrics
from bot.channels.base import IncomingMessage
from bot.database import Database
from bot.locks import ConversationLocks
from bot.models import InboundUpdate, utcnow
from bot.router import Router

log = logging.getLogger(__name__)
PAGE = 100  # pending updates read at a time


@dataclass(frozen=True)
class Stored:
    id: int
    duplicate: bool


class Intake:
    """Stores inbound updates and runs the router over them, one conversation at a time."""

    def __init__(self, db: Database, router: Router, locks: ConversationLocks, *, max_attempts: int = 5,
                 sweep_every: float = 5.0, stale_after: float = 10.0) -> None:
        self.db = db
        self.router = router
        self.locks = locks
        self.max_attempts = max_attempts
        self.sweep_every = sweep_every
        self.stale_after = stale_after  # a pending update this old has lost its worker
        self._queued: set[str] = set()  # conversations with a drain that has not started reading yet
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, channel: str, platform_id: str, msg: IncomingMessage, seq: int | None = None) -> Stored:
        """Store one update (idempotent on ``(channel, platform_id)``); call before acknowledging it."""

        values = {"channel": channel, "platform_id": platform_id, "conversation_key": msg.conversation_key,
                  "seq": seq, "message": msg.as_json()}

        def insert(session: Session) -> Stored:
            # one statement: the row is new, or (no row returned) the platform delivered it before
            new = session.scalar(self._insert_new(session), values)
            if new is not None:
                session.commit()
                return Stored(new, False)
            session.rollback()
            return Stored(session.scalars(select(InboundUpdate.id).where(
                InboundUpdate.channel == channel, InboundUpdate.platform_id == platform_id)).one(), True)

        stored = await self.db.run(insert)
        metrics.stored(msg.channel, stored.duplicate)  # the staff group apart from citizens
        return stored

    @staticmethod
    @functools.cache
    def _insert_for(dialect: str) -> Executable:
        keys = ["channel", "platform_id"]
        if dialect == "postgresql":
            return postgresql.insert(InboundUpdate).on_conflict_do_nothing(index_elements=keys).returning(
                InboundUpdate.id)
        return sqlite.insert(InboundUpdate).on_conflict_do_nothing(index_elements=keys).returning(InboundUpdate.id)

    def _insert_new(self, session: Session) -> Executable:
        """``INSERT … ON CONFLICT (channel, platform_id) DO NOTHING RETURNING id`` in the database's dialect."""
        return self._insert_for(session.get_bind().dialect.name)

    def schedule(self, key: str) -> None:
        """Process the pending updates of conversation ``key`` in the background."""
        if key in self._queued:
            return  # a drain that has not read the queue yet will see the new update too
        self._queued.add(key)
        task = asyncio.create_task(self._drain_logged(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_logged(self, key: str) -> None:
        try:
            await self.drain(key)
        except Exception:
            log.exception("processing conversation %s failed; the sweep will retry", key)
        finally:
            self._queued.discard(key)  # also when the lock could not be had: the next schedule must run

    async def drain(self, key: str) -> None:
        """Process every pending update of conversation ``key``, oldest first, under its lock."""
        async with self.locks.hold(key):
            # From here on, an update stored in this process schedules a drain of its own, which waits for this
            # lock; one stored by another replica is drained there. So the queue is read once, not again at the end.
            self._queued.discard(key)
            while True:
                pending = await self.db.run(lambda s: self._pending(s, key), autocommit=True)
                for row_id, data, received_at in pending:
                    if not await self._process(row_id, IncomingMessage.from_json(data), received_at):
                        return  # keep the order: later updates wait for this one's retry
                if len(pending) < PAGE:
                    return

    @staticmethod
    def _pending(session: Session, key: str) -> list[tuple[int, dict[str, Any], dt.datetime]]:
        rows = session.execute(
            select(InboundUpdate.id, InboundUpdate.message, InboundUpdate.received_at)
            .where(InboundUpdate.conversation_key == key, InboundUpdate.status == "pending")
            .order_by(InboundUpdate.seq, InboundUpdate.id)
            .limit(PAGE)
        ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    async def _process(self, row_id: int, msg: IncomingMessage, received_at: dt.datetime | None = None) -> bool:
        """Process one update; ``False`` when it failed and will be retried (later updates must wait)."""
        try:
            await self.router.process(row_id, msg, received_at)
            return True
        except Exception as exc:
            log.exception("inbound update %s could not be processed", row_id)
            reason = f"{type(exc).__name__}: {exc}"
            return await self.db.run(lambda s: self._failed(s, row_id, reason))

    def _failed(self, session: Session, row_id: int, reason: str) -> bool:
        """Count a failed attempt; ``True`` when the update is given up (the conversation moves on)."""
        row = session.get(InboundUpdate, row_id)
        if row is None or row.status != "pending":
            return True
        row.attempts += 1
        row.error = reason[:1000]
        if row.attempts >= self.max_attempts:
            row.status = "failed"  # kept for inspection
            log.error("inbound update %s given up after %d attempts", row_id, row.attempts)
        session.commit()
        return row.status == "failed"

    async def recover(self, older_than: float = 0.0) -> int:
        """Schedule every conversation with updates pending for more than ``older_than`` seconds."""

        def keys(session: Session) -> list[str]:
            cutoff = utcnow() - dt.timedelta(seconds=older_than)
            return list(session.scalars(
                select(InboundUpdate.conversation_key)
                .where(InboundUpdate.status == "pending", InboundUpdate.received_at <= cutoff)
                .distinct()
            ))

        found = await self.db.run(keys)
        for key in found:
            self.schedule(key)
        return len(found)

    async def sweep(self) -> None:
        """Every ``sweep_every`` seconds, pick up updates nobody is processing (another replica died, a retry)."""
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                await self.recover(self.stale_after)
            except Exception:
                log.exception("intake sweep failed")

    async def close(self, grace: float = 10.0) -> None:
        """Let running drains finish (for up to ``grace`` s); what is cut off stays pending for the next start."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
