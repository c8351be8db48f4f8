"""Counting lost and duplicated messages: what the citizens sent and saw, against the gateway's database.

Telegram: every update the bench delivered must be stored once, processed once, and each reply row of the outbox
must reach the fake Bot API exactly once (compared per chat as multisets of texts). Web chat: every message must
be processed once (one inbound row per ``client_id``, one transcript line), and no reply may be shown twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bench.load import Turn
from bench.stack import Telegram
from bot.models import Conversation, InboundUpdate, Message, OutboxEntry
from tests.fakes.telegram import TOKEN

BOT_ID = TOKEN.split(":", 1)[0]


@dataclass
class Tally:
    sent: int = 0  # citizen messages sent (first attempts)
    acked: int = 0  # ... that the gateway accepted (200)
    answered: int = 0  # ... that got at least one reply
    retried: int = 0  # extra attempts (failed calls that a client repeated)
    refused: int = 0  # never accepted despite the client's retries (Telegram would keep redelivering)
    lost: int = 0  # accepted but never answered, or replies stored but never handed to the platform
    duplicated: int = 0  # processed twice, or a reply handed over / shown twice
    unavailable: int = 0  # answered with the gateway's "temporarily unavailable" text
    handed_off: int = 0  # conversations that left the bot (a staff handoff): not counted as lost
    sends: int = 0  # platform calls (Telegram messages) for these turns
    notes: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("sent", "acked", "answered", "retried", "refused", "lost", "duplicated", "unavailable",
                     "handed_off", "sends"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.notes += other.notes


def pending(engine: Engine, keys: list[str]) -> int:
    """Inbound updates and outbox rows of these conversations that are still pending."""
    if not keys:
        return 0
    with Session(engine) as session:
        inbound = session.scalar(select(func.count()).where(InboundUpdate.conversation_key.in_(keys),
                                                            InboundUpdate.status == "pending")) or 0
        conv_ids = select(Conversation.id).where(Conversation.key.in_(keys)).scalar_subquery()
        outbox = session.scalar(select(func.count()).where(OutboxEntry.conversation_id.in_(conv_ids),
                                                           OutboxEntry.status == "pending")) or 0
    return int(inbound) + int(outbox)


async def drain(engine: Engine, keys: list[str], seconds: float = 60.0) -> float:
    """Wait until nothing of these conversations is pending (at most ``seconds``); the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if await asyncio.to_thread(pending, engine, keys) == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def conversation_keys(turns: list[Turn], engine: Engine) -> list[str]:
    """The gateway's conversation keys of these turns."""
    keys = {f"telegram:{t.chat}" for t in turns if t.channel == "telegram"}
    refs = [t.ref for t in turns if t.channel == "webchat"]
    if refs:
        labels = {ref.rsplit("-", 1)[0] for ref in refs}
        with Session(engine) as session:
            for label in labels:
                keys.update(session.scalars(
                    select(InboundUpdate.conversation_key).where(InboundUpdate.channel == "webchat",
                                                                 InboundUpdate.platform_id.like(f"%:{label}-%"))
                    .distinct()))
    return sorted(keys)


def _common(session: Session, tally: Tally, keys: list[str], inbound_ids: list[int]) -> None:
    twice = session.scalars(
        select(Message.inbound_id).where(Message.direction == "in", Message.inbound_id.in_(inbound_ids))
        .group_by(Message.inbound_id).having(func.count() > 1)).all()
    if twice:
        tally.duplicated += len(twice)
        tally.notes.append(f"{len(twice)} inbound update(s) processed twice")
    tally.handed_off += int(session.scalar(select(func.count()).where(
        Conversation.key.in_(keys), Conversation.mode != "bot")) or 0)


def account_telegram(turns: list[Turn], engine: Engine, telegram: Telegram) -> Tally:
    tally = Tally(sent=len(turns), retried=sum(max(0, t.attempts - 1) for t in turns))
    tally.acked = sum(t.acked for t in turns)
    tally.answered = sum(t.replies > 0 for t in turns)
    tally.unavailable = sum(t.unavailable for t in turns)
    tally.refused = sum(not t.acked for t in turns)
    chats = sorted({t.chat for t in turns})
    keys = [f"telegram:{c}" for c in chats]
    platform_ids = {f"{BOT_ID}:{t.ref}": t for t in turns}
    with Session(engine) as session:
        rows = session.execute(select(InboundUpdate.id, InboundUpdate.platform_id, InboundUpdate.status)
                               .where(InboundUpdate.conversation_key.in_(keys))).all()
        stored = {r.platform_id: r for r in rows}
        for pid, turn in platform_ids.items():
            row = stored.get(pid)
            if row is None and turn.acked:
                tally.lost += 1
                tally.notes.append(f"update {turn.ref} acknowledged but not stored")
            elif row is not None and row.status != "done":
                tally.lost += 1
                tally.notes.append(f"update {turn.ref} left {row.status}")
            elif row is not None and turn.replies == 0:
                tally.lost += 1
                tally.notes.append(f"update {turn.ref} processed but no reply reached the platform")
        _common(session, tally, keys, [r.id for r in rows])
        outbox = session.execute(select(OutboxEntry.recipient, OutboxEntry.status, OutboxEntry.body)
                                 .where(OutboxEntry.channel == "telegram", OutboxEntry.recipient.in_(chats))).all()
    expected: dict[str, Counter[str]] = {c: Counter() for c in chats}
    for row in outbox:
        if row.status == "sent":
            expected[row.recipient][str(row.body.get("text") or "")] += 1
        else:
            tally.lost += 1
            tally.notes.append(f"a reply to {row.recipient} left {row.status}")
    for chat in chats:
        got = Counter(c.text or "" for c in telegram.sent(int(chat)))
        tally.sends += sum(got.values())
        extra = got - expected[chat]
        missing = expected[chat] - got
        if extra:
            tally.duplicated += sum(extra.values())
            tally.notes.append(f"chat {chat}: {sum(extra.values())} reply(ies) handed over twice")
        if missing:
            tally.lost += sum(missing.values())
            tally.notes.append(f"chat {chat}: {sum(missing.values())} reply(ies) marked sent but never received")
    return tally


def account_webchat(turns: list[Turn], engine: Engine) -> Tally:
    tally = Tally(sent=len(turns), retried=sum(max(0, t.attempts - 1) for t in turns))
    tally.acked = sum(t.acked for t in turns)
    tally.answered = sum(t.replies > 0 for t in turns)
    tally.unavailable = sum(t.unavailable for t in turns)
    keys = conversation_keys(turns, engine)
    with Session(engine) as session:
        rows = session.execute(select(InboundUpdate.id, InboundUpdate.platform_id, InboundUpdate.status)
                               .where(InboundUpdate.conversation_key.in_(keys))).all()
        by_ref = {r.platform_id.split(":", 1)[1]: r for r in rows}
        for turn in turns:
            row = by_ref.get(turn.ref)
            if turn.acked and turn.replies == 0:
                tally.lost += 1
                tally.notes.append(f"web chat {turn.ref} answered 200 with no reply")
            elif not turn.acked:
                if row is not None and row.status == "done":
                    tally.refused += 1  # processed; the page shows the answer when it fetches the history
                    tally.notes.append(f"web chat {turn.ref}: processed, but the client's calls failed ({turn.error})")
                elif row is None:
                    tally.refused += 1
                    tally.notes.append(f"web chat {turn.ref}: never stored ({turn.error})")
                else:
                    tally.lost += 1
                    tally.notes.append(f"web chat {turn.ref} left {row.status}")
        _common(session, tally, keys, [r.id for r in rows])
    seen: dict[str, set[int]] = {}
    for turn in turns:
        ids = seen.setdefault(turn.chat, set())
        again = ids.intersection(turn.reply_ids)
        if again:
            tally.duplicated += len(again)
            tally.notes.append(f"web chat {turn.ref}: {len(again)} reply(ies) shown twice")
        ids.update(turn.reply_ids)
    return tally


def stage_times(turns: list[Turn], engine: Engine, clock_offset: float) -> dict[str, list[float]]:
    """Per answered turn, seconds spent: webhook → stored, stored → processed (Rasa included), processed → handed;
    and webhook → processed (``ready``: the reply committed, ready for the platform; the bot's own part).

    ``clock_offset`` converts the fake's monotonic arrival times to wall-clock time (``time.time() - monotonic``).
    """
    refs = {(f"{BOT_ID}:{t.ref}" if t.channel == "telegram" else t.ref): t for t in turns if t.first is not None}
    keys = conversation_keys(turns, engine)
    out: dict[str, list[float]] = {"intake": [], "processing": [], "handover": [], "ready": []}
    with Session(engine) as session:
        rows = session.execute(select(InboundUpdate.platform_id, InboundUpdate.received_at,
                                      InboundUpdate.processed_at)
                               .where(InboundUpdate.conversation_key.in_(keys))).all()
    for row in rows:
        ref = row.platform_id if row.platform_id.startswith(f"{BOT_ID}:") else row.platform_id.split(":", 1)[1]
        turn = refs.get(ref)
        if turn is None or turn.first is None or row.processed_at is None or turn.attempts != 1:
            continue
        received, processed = row.received_at.timestamp(), row.processed_at.timestamp()
        out["intake"].append(received - turn.sent_wall)
        out["processing"].append(processed - received)
        out["handover"].append(turn.first + clock_offset - processed)
        out["ready"].append(processed - turn.sent_wall)
    return out
