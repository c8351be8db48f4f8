"""The outbox: replies for push channels, stored with the transcript, sent by a worker that survives restarts.

Each row is one platform call. The worker sends the oldest pending row of every recipient (so one chat's
messages keep their order), leases it while the call is in flight (a short lease, renewed every third of it
while the call goes on, so that the rows of a replica that died are taken over within seconds), and then marks
it ``sent``, ``failed`` (the platform refused it for good; the reason is kept) or schedules a retry — after the
platform's ``retry_after`` when it gave one, with exponential back-off otherwise. Nothing is dropped: a row is
pending until one of those happens, including across a restart. A row whose call was in flight when the process
died is sent again (the platforms offer no idempotency key), so delivery is at least once at that one point and
exactly once elsewhere.

The rows a gateway has just written for a recipient with nothing else pending are not left for the worker to
find: they are written already leased, and after the commit the router hands them straight to a sender here
(:meth:`Outbox.hand`). That saves the worker's query and its lease update for nearly every reply, and the time to
the next wake-up; the order in the chat stays the same, since any earlier pending row makes the new ones wait for
the worker. A sender that dies before sending leaves leased rows, taken over when the lease runs out, as above."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable, Integer, Select, bindparam, event, func, or_, select, update
from sqlalchemy.orm import Mapper, Session, aliased, object_session

from bot import metrics
from bot.channels.base import OutgoingMessage, PushChannel, RetryLater, Undeliverable
from bot.database import Database
from bot.models import Conversation, Message, OutboxEntry, utcnow
from dvcbot.logs import conversation_context

log = logging.getLogger(__name__)
MAX_BACKOFF = 300.0
LEASE_SECONDS = 15.0  # a dead sender's rows wait this long; a live sender renews its rows' leases


@dataclass(frozen=True)
class Claimed:
    id: int
    channel: str
    recipient: str
    body: dict[str, Any]
    attempts: int
    message_id: int | None = None  # the transcript line (ends an end-to-end latency measurement)


INSERTED = "dvcbot.outbox.inserted"  # Session.info: outbox rows this session inserted


@event.listens_for(OutboxEntry, "after_insert")
def _count_insert(mapper: Mapper[OutboxEntry], connection: Connection, target: OutboxEntry) -> None:
    """Count every outbox row a session inserts, whoever wrote it (the router's caller wakes the worker for
    those it does not hand over)."""
    session = object_session(target)
    if session is not None:
        session.info[INSERTED] = session.info.get(INSERTED, 0) + 1


def inserted(session: Session) -> int:
    """Outbox rows ``session`` has inserted (flushed) so far."""
    return int(session.info.get(INSERTED, 0))


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failure without advice from the platform."""
    return float(min(2 ** max(attempts - 1, 0), MAX_BACKOFF))


class Outbox:
    """Writes replies for push channels into the outbox table and delivers them."""

    def __init__(self, db: Database, channels: dict[str, PushChannel], *, concurrency: int = 64,
                 poll: float = 0.5, lease: float = LEASE_SECONDS) -> None:
        self.db = db
        self.channels = channels
        self.concurrency = concurrency
        self.poll = poll
        self.lease = lease  # renewed every lease / 3 s while the call is in flight (rate-limit waits included)
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._sending: set[int] = set()  # row ids in flight here: never claimed twice, whatever their lease
        self._statements: tuple[tuple[str, ...], Select[int], Executable] | None = None

    # --- writing (inside the transaction that stores the replies) ----------------------------------------------

    def add(self, session: Session, conversation: Conversation,
            replies: list[tuple[OutgoingMessage, Message]]) -> int:
        """Queue the visible ``replies`` of a push-channel conversation; returns the number of rows."""
        return len(self._add(session, conversation, replies, lease=False)[0])

    def add_leased(self, session: Session, conversation: Conversation,
                   replies: list[tuple[OutgoingMessage, Message]]) -> tuple[int, list[Claimed]]:
        """Like :meth:`add`; but when nothing else is pending for the recipient, the rows are written leased to
        this process and returned (flushed) for :meth:`hand` once the transaction is committed.

        Returns the number of rows and those to hand over (none when they were left for the worker)."""
        entries, leased = self._add(session, conversation, replies, lease=True)
        if not leased:
            return len(entries), []
        session.flush()
        return len(entries), [Claimed(e.id, e.channel, e.recipient, e.body, e.attempts, e.message_id)
                              for e in entries]

    def _add(self, session: Session, conversation: Conversation, replies: list[tuple[OutgoingMessage, Message]],
             lease: bool) -> tuple[list[OutboxEntry], bool]:
        channel = self.channels.get(conversation.channel)
        if channel is None:  # the web chat: the client fetches what is stored
            metrics.pulled(conversation.channel, sum(1 for reply, _ in replies if reply.visible))
            return [], False
        entries = [
            OutboxEntry(channel=conversation.channel, conversation_id=conversation.id,
                        recipient=conversation.user_id, body=body, message_id=row.id)
            for reply, row in replies if reply.visible
            for body in channel.render(session, reply)
        ]
        if entries and lease:
            # an earlier row still pending for the recipient (a retry, a sender at work, a staff message written
            # in this very transaction): the worker sends these after it, in order
            lease = session.scalar(
                select(OutboxEntry.id).where(OutboxEntry.channel == conversation.channel,
                                             OutboxEntry.recipient == conversation.user_id,
                                             OutboxEntry.status == "pending").limit(1)) is None
            if lease:
                until = utcnow() + dt.timedelta(seconds=self.lease)
                for entry in entries:
                    entry.leased_until, entry.attempts = until, 1
        session.add_all(entries)
        return entries, bool(entries) and lease

    def notify(self) -> None:
        """Wake the worker: rows were committed."""
        self._wake.set()

    def hand(self, rows: list[Claimed]) -> None:
        """Send ``rows`` (one recipient's, from :meth:`add_leased`, committed) in order, without the worker."""
        if not rows:
            return
        self._sending.update(row.id for row in rows)
        task = asyncio.create_task(self._send_in_order(rows))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    # --- sending ---------------------------------------------------------------------------------------------

    async def release_leases(self) -> int:
        """Free the leases of a previous run; only safe when no other gateway process is sending."""

        def release(session: Session) -> int:
            result = session.execute(
                update(OutboxEntry).where(OutboxEntry.status == "pending", OutboxEntry.leased_until.is_not(None))
                .values(leased_until=None)
            )
            session.commit()
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self.db.run(release)

    def _claim_statements(self) -> tuple[Select[int], Executable]:
        """The claim's two statements, built once per set of channels (building them was a third of its cost).

        Parameters: ``now``, ``limit``; then ``ids``, ``now``, ``until``.
        """
        channels = tuple(sorted(self.channels))
        cached = self._statements
        if cached is None or cached[0] != channels:
            now = bindparam("now", type_=OutboxEntry.not_before.type)
            other = aliased(OutboxEntry)
            head = (
                select(func.min(other.id))
                .where(other.channel == OutboxEntry.channel, other.recipient == OutboxEntry.recipient,
                       other.status == "pending")
                .scalar_subquery()
            )
            due = (
                select(OutboxEntry.id)
                .where(OutboxEntry.status == "pending", OutboxEntry.channel.in_(channels), OutboxEntry.id == head,
                       OutboxEntry.not_before <= now,
                       or_(OutboxEntry.leased_until.is_(None), OutboxEntry.leased_until < now))
                .order_by(OutboxEntry.id)
                .limit(bindparam("limit", type_=Integer))
            )
            # compare-and-set: of two senders (replicas) that picked the same row, one gets it
            take = (
                update(OutboxEntry)
                .where(OutboxEntry.id.in_(bindparam("ids", expanding=True)), OutboxEntry.status == "pending",
                       or_(OutboxEntry.leased_until.is_(None), OutboxEntry.leased_until < now))
                .values(leased_until=bindparam("until", type_=OutboxEntry.leased_until.type),
                        attempts=OutboxEntry.attempts + 1)
                .returning(OutboxEntry.id, OutboxEntry.channel, OutboxEntry.recipient, OutboxEntry.body,
                           OutboxEntry.attempts, OutboxEntry.message_id)
            )
            cached = self._statements = (channels, due, take)
        return cached[1], cached[2]

    def _claim(self, session: Session, limit: int) -> list[Claimed]:
        due, take = self._claim_statements()
        now = utcnow()
        # rows in flight here are skipped whatever their lease (read before filtering, so that the statement stays
        # the same from call to call)
        ids = [i for i in session.scalars(due, {"now": now, "limit": limit + len(self._sending)})
               if i not in self._sending][:limit]
        if not ids:
            return []
        rows = session.execute(take, {"ids": ids, "now": now,
                                      "until": now + dt.timedelta(seconds=self.lease)}).all()
        session.commit()
        return sorted((Claimed(*r) for r in rows), key=lambda c: c.id)

    def _renew(self, session: Session, ids: list[int]) -> int:
        """Extend the leases of rows in flight here; a row already recorded (lease cleared) is left alone."""
        result = session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(ids), OutboxEntry.status == "pending", OutboxEntry.leased_until.is_not(None))
            .values(leased_until=utcnow() + dt.timedelta(seconds=self.lease))
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def renew_leases(self) -> None:
        """Every third of the lease, renew the leases of the rows whose calls are still in flight, until cancelled."""
        while True:
            await asyncio.sleep(self.lease / 3)
            ids = sorted(self._sending)
            if not ids:
                continue
            try:
                await self.db.run(functools.partial(self._renew, ids=ids))
            except Exception:
                log.warning("outbox: could not renew the leases of %d rows in flight", len(ids), exc_info=True)

    def _record(self, session: Session, claimed: Claimed, error: BaseException | None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"leased_until": None}
        if error is None:
            values.update(status="sent", sent_at=now, last_error=None)
        elif isinstance(error, Undeliverable):
            values.update(status="failed", last_error=str(error)[:1000])
        else:
            delay = error.delay if isinstance(error, RetryLater) and error.delay is not None else backoff(
                claimed.attempts)
            values.update(not_before=now + dt.timedelta(seconds=delay),
                          last_error=f"{type(error).__name__}: {error}"[:1000])
        session.execute(update(OutboxEntry).where(OutboxEntry.id == claimed.id).values(**values))
        session.commit()

    async def _send(self, claimed: Claimed) -> None:
        try:
            with conversation_context(f"{claimed.channel}:{claimed.recipient}"):
                await self._deliver(claimed)
        finally:
            self._sending.discard(claimed.id)
            self._wake.set()

    async def _send_in_order(self, rows: list[Claimed]) -> None:
        """Send handed rows one after the other. One the platform asks to retry stops the run: the rest lose
        their lease and wait behind it for the worker, as if they had never been handed over."""
        left = list(rows)
        try:
            with conversation_context(f"{rows[0].channel}:{rows[0].recipient}"):
                while left:
                    error = await self._deliver(left[0])
                    self._sending.discard(left.pop(0).id)
                    if error is not None and not isinstance(error, Undeliverable):
                        break
                if left:
                    await self.db.run(functools.partial(self._unlease, ids=[row.id for row in left]))
        except Exception:  # the leases run out on their own
            log.exception("outbox: could not give back the leases of %d rows", len(left))
        finally:
            self._sending.difference_update(row.id for row in left)
            if left:
                self._wake.set()

    @staticmethod
    def _unlease(session: Session, ids: list[int]) -> None:
        session.execute(
            update(OutboxEntry).where(OutboxEntry.id.in_(ids), OutboxEntry.status == "pending")
            .values(leased_until=None, attempts=OutboxEntry.attempts - 1)
        )
        session.commit()

    async def _deliver(self, claimed: Claimed) -> BaseException | None:
        """Make the row's call and record the outcome; returns the error, if any."""
        error: BaseException | None = None
        try:
            await self.channels[claimed.channel].deliver(claimed.recipient, claimed.body)
        except (RetryLater, Undeliverable) as exc:
            error = exc
        except Exception as exc:  # a bug or an unexpected platform answer: retry later, never drop
            log.exception("outbox row %s: unexpected error", claimed.id)
            error = exc
        if isinstance(error, Undeliverable):
            log.warning("outbox row %s to %s refused for good: %s", claimed.id, claimed.channel, error)
        metrics.sent(claimed.channel, error, claimed.message_id)
        for attempt in range(5):  # the platform has it: try hard to remember that
            try:
                await self.db.run(lambda s: self._record(s, claimed, error))
                break
            except Exception:
                log.exception("outbox row %s: could not record the outcome (attempt %d)", claimed.id, attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))
        return error

    async def run(self) -> None:
        """Send until cancelled."""
        renewing = asyncio.create_task(self.renew_leases())
        try:
            await self._run()
        finally:
            renewing.cancel()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            free = self.concurrency - len(self._inflight)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await self.db.run(functools.partial(self._claim, limit=free))
                except Exception:
                    log.exception("outbox: could not read pending rows")
            for row in claimed:
                self._sending.add(row.id)
                task = asyncio.create_task(self._send(row))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if len(claimed) < free or free <= 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def drain(self, grace: float = 5.0) -> None:
        """Let the calls in flight finish (for up to ``grace`` s), then cancel the rest."""
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
