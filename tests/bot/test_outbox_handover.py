"""Rows handed straight to a sender: written leased when the chat has nothing else pending, sent in order without
the outbox's worker; a retry gives the rest back to the worker, behind it. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.channels.base import OutgoingMessage, RetryLater, Undeliverable
from bot.database import Database
from bot.models import Conversation, Message, OutboxEntry, utcnow
from bot.outbox import Claimed, Outbox, inserted
from tests.db import database_url, engine  # noqa: F401  (fixtures)


class ScriptedChannel:
    """A push channel that records what it sends; ``refuse`` maps a text to the errors its next calls raise."""

    name = "telegram"

    def __init__(self, refuse: dict[str, list[Exception]] | None = None) -> None:
        self.sent: list[str] = []
        self.calls: list[str] = []
        self.refuse = refuse or {}

    def render(self, session: Session, reply: OutgoingMessage) -> list[dict[str, Any]]:
        return [{"text": reply.text}]

    async def deliver(self, recipient: str, body: dict[str, Any]) -> None:
        self.calls.append(body["text"])
        errors = self.refuse.get(body["text"])
        if errors:
            raise errors.pop(0)
        self.sent.append(body["text"])


def write(engine: Engine, outbox: Outbox, texts: list[str], earlier: str | None = None  # noqa: F811
          ) -> tuple[int, list[Claimed]]:
    """The bot's replies ``texts`` to citizen 42, written as the router does (``earlier``: a row already pending)."""
    with Session(engine) as session:
        conv = session.scalar(select(Conversation).where(Conversation.key == "telegram:42"))
        if conv is None:
            conv = Conversation(key="telegram:42", channel="telegram")
            session.add(conv)
            session.flush()
        if earlier is not None:
            session.add(OutboxEntry(channel="telegram", conversation_id=conv.id, recipient="42",
                                    body={"text": earlier}))
        rows = [Message(conversation_id=conv.id, direction="out", sender="bot", text=t) for t in texts]
        session.add_all(rows)
        session.flush()
        replies = [(OutgoingMessage(text=t), r) for t, r in zip(texts, rows, strict=True)]
        queued, handed = outbox.add_leased(session, conv, replies)
        session.commit()
        assert inserted(session) == len(texts) + (earlier is not None)
        return queued, handed


def rows(engine: Engine) -> list[tuple[str, str, int, bool]]:  # noqa: F811
    """(text, status, attempts, leased) of every outbox row, oldest first."""
    with Session(engine) as session:
        return [(r.body["text"], r.status, r.attempts, r.leased_until is not None)
                for r in session.scalars(select(OutboxEntry).order_by(OutboxEntry.id))]


async def until(condition: Any, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def run_worker_until(outbox: Outbox, condition: Any) -> None:
    task = asyncio.create_task(outbox.run())
    try:
        await until(condition)
    finally:
        task.cancel()
        await outbox.drain(grace=5)


async def test_replies_to_a_quiet_chat_are_sent_in_order_without_the_worker(engine: Engine) -> None:  # noqa: F811
    channel = ScriptedChannel()
    outbox = Outbox(Database(engine), {"telegram": channel})  # type: ignore[dict-item]
    queued, handed = write(engine, outbox, ["một", "hai", "ba"])
    assert queued == 3
    assert [h.body["text"] for h in handed] == ["một", "hai", "ba"]
    assert rows(engine) == [("một", "pending", 1, True), ("hai", "pending", 1, True), ("ba", "pending", 1, True)]
    outbox.hand(handed)  # the worker never runs in this test
    await until(lambda: rows(engine) == [("một", "sent", 1, False), ("hai", "sent", 1, False),
                                         ("ba", "sent", 1, False)])
    assert channel.sent == ["một", "hai", "ba"]
    await outbox.drain()


async def test_replies_behind_a_pending_row_wait_for_the_worker_in_order(engine: Engine) -> None:  # noqa: F811
    channel = ScriptedChannel()
    outbox = Outbox(Database(engine), {"telegram": channel})  # type: ignore[dict-item]
    queued, handed = write(engine, outbox, ["trả lời"], earlier="tin của cán bộ")
    assert (queued, handed) == (1, [])
    assert rows(engine) == [("tin của cán bộ", "pending", 0, False), ("trả lời", "pending", 0, False)]
    await run_worker_until(outbox, lambda: len(channel.sent) == 2)
    assert channel.sent == ["tin của cán bộ", "trả lời"]


async def test_a_retry_stops_the_run_and_the_rest_wait_behind_it(engine: Engine) -> None:  # noqa: F811
    channel = ScriptedChannel(refuse={"một": [RetryLater("429 Too Many Requests", delay=0.3)]})
    outbox = Outbox(Database(engine), {"telegram": channel})  # type: ignore[dict-item]
    _, handed = write(engine, outbox, ["một", "hai"])
    outbox.hand(handed)
    await until(lambda: rows(engine) == [("một", "pending", 1, False), ("hai", "pending", 0, False)])
    assert channel.calls == ["một"]  # "hai" was not tried: it must not overtake "một"
    await run_worker_until(outbox, lambda: len(channel.sent) == 2)
    assert channel.sent == ["một", "hai"]
    assert rows(engine) == [("một", "sent", 2, False), ("hai", "sent", 1, False)]


async def test_a_row_refused_for_good_does_not_hold_up_the_rest(engine: Engine) -> None:  # noqa: F811
    channel = ScriptedChannel(refuse={"một": [Undeliverable("Bad Request: message is too long")]})
    outbox = Outbox(Database(engine), {"telegram": channel})  # type: ignore[dict-item]
    _, handed = write(engine, outbox, ["một", "hai"])
    outbox.hand(handed)
    await until(lambda: rows(engine) == [("một", "failed", 1, False), ("hai", "sent", 1, False)])
    assert channel.sent == ["hai"]
    await outbox.drain()


async def test_rows_handed_but_never_sent_are_taken_over_when_the_lease_runs_out(engine: Engine) -> None:  # noqa: F811
    channel = ScriptedChannel()
    outbox = Outbox(Database(engine), {"telegram": channel}, lease=1.0)  # type: ignore[dict-item]
    write(engine, outbox, ["một"])  # the process dies between the commit and the hand-over
    other = Outbox(Database(engine), {"telegram": channel}, lease=1.0)  # type: ignore[dict-item]
    started = utcnow()
    await run_worker_until(other, lambda: channel.sent == ["một"])
    assert (utcnow() - started).total_seconds() > 0.5
    assert rows(engine) == [("một", "sent", 2, False)]
