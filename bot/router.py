"""The conversation router: turns one stored citizen message into replies and records the whole exchange.

It is called by :mod:`bot.intake` under the conversation's lock. The citizen's line, the replies and their
outbox rows are written in one transaction together with marking the inbound update done, so that a crash
leaves either nothing (the update is processed again) or everything (the replies will be sent).

The conversation's mode decides who answers (:mod:`bot.handoff`): in ``bot`` mode Rasa, whose custom payload
``{"handoff": ...}`` opens a ticket; in ``waiting``/``staff`` mode the handoff layer, which relays the message
to staff. Updates from the Telegram staff group go straight to the handoff layer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import metrics
from bot.channels.base import Button, IncomingMessage, OutgoingMessage
from bot.database import Database
from bot.handoff import STAFF_CHANNEL, Handoff, rating_ticket
from bot.models import Conversation, InboundUpdate, Message, finish_inbound, utcnow
from bot.outbox import Claimed, Outbox, inserted
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.texts import GatewayTexts
from dvcbot.logs import conversation_context

log = logging.getLogger(__name__)


def message_out(row: Message) -> OutgoingMessage:
    payload = row.payload or {}
    return OutgoingMessage(
        text=row.text,
        buttons=[Button(b["title"], b["payload"]) for b in payload.get("buttons", [])],
        image=payload.get("image"),
        custom=payload.get("custom"),
        id=row.id,
        sender=row.sender,
    )


def conversation(session: Session, key: str, channel: str, display_name: str | None = None) -> Conversation:
    """The conversation with Rasa sender id ``key``, created if new."""
    conv = session.scalar(select(Conversation).where(Conversation.key == key))
    if conv is None:
        conv = Conversation(key=key, channel=channel, display_name=display_name)
        session.add(conv)
        try:
            session.commit()
        except IntegrityError:  # created concurrently by another worker
            session.rollback()
            conv = session.scalars(select(Conversation).where(Conversation.key == key)).one()
    return conv


@dataclass(frozen=True)
class _State:
    conversation_id: int
    mode: str
    rating_pending: bool


# what the handoff layer adds to an exchange inside its transaction: more replies for the citizen
Hook = Callable[[Session, Conversation], list[OutgoingMessage]]


class Router:
    """Routes one citizen message to the bot or to staff and stores the exchange."""

    def __init__(self, db: Database, rasa: RasaClient, texts: GatewayTexts, outbox: Outbox | None = None,
                 max_chars: int = 2000, handoff: Handoff | None = None) -> None:
        self.db = db
        self.rasa = rasa
        self.texts = texts
        self.outbox = outbox
        self.max_chars = max_chars
        self.handoff = handoff
        # replies a web chat request is waiting for, by inbound update: filled when this process commits them
        self._awaited: dict[int, list[OutgoingMessage] | None] = {}

    async def process(self, inbound_id: int, msg: IncomingMessage, received_at: dt.datetime | None = None) -> None:
        """Answer inbound update ``inbound_id`` (holding ``msg``, stored at ``received_at``) and store everything;
        once only. Log records meanwhile carry the conversation."""
        with conversation_context(msg.conversation_key):
            await self._process(inbound_id, msg, received_at)

    async def _process(self, inbound_id: int, msg: IncomingMessage, received_at: dt.datetime | None) -> None:
        if msg.channel == STAFF_CHANNEL:
            if self.handoff is not None:
                await self.handoff.staff_update(inbound_id, msg)
            else:
                await self.db.run(lambda s: self._drop(s, inbound_id))
            return

        def open_(session: Session) -> _State:
            conv = conversation(session, msg.conversation_key, msg.channel, msg.display_name)
            pending = conv.mode == "bot" and rating_ticket(session, conv.id) is not None
            return _State(conv.id, conv.mode, pending)

        state = await self.db.run(open_, autocommit=True)  # reads, or one insert
        handoff = self.handoff
        hook: Hook | None = None
        replies: list[OutgoingMessage] = []
        if handoff is not None and handoff.handles(state.mode, state.rating_pending, msg):

            def on_citizen(session: Session, conv: Conversation) -> list[OutgoingMessage]:
                assert handoff is not None
                return handoff.on_citizen(session, conv, msg, self.max_chars)

            hook = on_citizen
        else:
            replies = await self._answer(msg)
            if handoff is not None:
                answered = replies

                def after_bot(session: Session, conv: Conversation) -> list[OutgoingMessage]:
                    assert handoff is not None
                    return handoff.after_bot(session, conv, answered, state.mode != "bot" or state.rating_pending)

                hook = after_bot
        handed, waiting = await self.db.run(lambda s: self._commit(s, inbound_id, state.conversation_id, msg,
                                                                    replies, hook, received_at))
        if self.outbox:
            self.outbox.hand(handed)
            if waiting:  # rows for the worker: the citizen's chat was busy, or the handoff posted for staff
                self.outbox.notify()

    @staticmethod
    def _drop(session: Session, inbound_id: int) -> None:
        """A staff group update while the handoff is off: nothing to do but mark it done."""
        finish_inbound(session, inbound_id)
        session.commit()

    async def _answer(self, msg: IncomingMessage) -> list[OutgoingMessage]:
        if msg.notice:
            return self.texts.messages(msg.notice, limit=self.max_chars)
        metadata: dict[str, Any] = {"channel": msg.channel, "locale": "vi", **msg.metadata}
        if msg.display_name:
            metadata["display_name"] = msg.display_name
        try:
            raw = await self.rasa.send(msg.conversation_key, msg.text, metadata)
        except RasaUnavailable as exc:  # counted by the client
            log.warning("rasa unavailable for %s: %s", msg.channel, exc)
            if self.handoff is not None and msg.text.strip() == "/human_handoff":
                # the bot is down and the citizen pressed "Gặp nhân viên": the gateway opens the ticket itself
                return [OutgoingMessage(custom={"handoff": {"reason": "unavailable"}})]
            return [self.texts.message("unavailable")]
        replies = [OutgoingMessage.from_rasa(item) for item in raw]
        if not any(r.visible or r.custom for r in replies):
            # Rasa answered but produced nothing to show: an action failed behind it.
            log.warning("rasa returned no visible reply for a %s message", msg.channel)
            metrics.RASA_ERRORS.labels("empty_reply").inc()
            return [self.texts.message("unavailable")]
        return replies

    def _commit(self, session: Session, inbound_id: int, conversation_id: int, msg: IncomingMessage,
                replies: list[OutgoingMessage], hook: Hook | None = None,
                received_at: dt.datetime | None = None) -> tuple[list[Claimed], int]:
        """Store the exchange; returns the outbox rows to hand to a sender, and how many more rows wait for the
        outbox's worker."""
        if not finish_inbound(session, inbound_id):
            session.rollback()  # processed meanwhile by another replica: keep its answer
            return [], 0
        conv = session.get(Conversation, conversation_id)
        assert conv is not None
        payload: dict[str, Any] = {"payload": msg.text} if msg.shown_text else {}
        payload.update(msg.metadata)
        session.add(Message(conversation_id=conv.id, direction="in", sender="citizen", text=msg.transcript_text,
                            payload=payload or None, inbound_id=inbound_id))
        session.flush()  # the citizen's line comes before anything the hook writes
        if hook is not None:
            replies = [*replies, *hook(session, conv)]
        rows = [Message(conversation_id=conv.id, direction="out", sender=r.sender, text=r.text,
                        payload=r.payload_dict(), inbound_id=inbound_id) for r in replies]
        session.add_all(rows)
        conv.last_activity_at = utcnow()
        if msg.display_name:
            conv.display_name = msg.display_name
        session.flush()
        queued, handed = (self.outbox.add_leased(session, conv, list(zip(replies, rows, strict=True)))
                          if self.outbox else (0, []))
        first = next((row.id for reply, row in zip(replies, rows, strict=True) if reply.visible), None)
        session.commit()
        if inbound_id in self._awaited:
            self._awaited[inbound_id] = [message_out(row) for row in rows]
        metrics.replied(conv.channel, received_at, first, queued > 0)
        return handed, inserted(session) - len(handed)

    def await_answer(self, inbound_id: int) -> None:
        """Keep the replies to ``inbound_id`` in memory if this process answers it (for :meth:`answers`)."""
        self._awaited.setdefault(inbound_id, None)

    def forget_answer(self, inbound_id: int) -> None:
        self._awaited.pop(inbound_id, None)

    async def answers(self, inbound_id: int) -> tuple[str, list[OutgoingMessage]]:
        """The status of an inbound update and the replies stored for it.

        Replies this process committed for an update it was asked to :meth:`await_answer` are returned as they were
        stored, without reading them back; otherwise (another replica answered it, or it was answered before) they
        are read from the database."""
        committed = self._awaited.pop(inbound_id, None)
        if committed is not None:
            return "done", committed

        def query(session: Session) -> tuple[str, list[OutgoingMessage]]:
            status = session.scalar(select(InboundUpdate.status).where(InboundUpdate.id == inbound_id))
            rows = session.scalars(
                select(Message).where(Message.inbound_id == inbound_id, Message.direction == "out")
                .order_by(Message.id)
            ).all()
            return status or "missing", [message_out(r) for r in rows]

        # no transaction: an answer committed between the two reads shows up as replies under "pending"; the client
        # asks again
        return await self.db.run(query, autocommit=True)

    async def history(self, conversation_id: int, after: int, limit: int = 100) -> list[OutgoingMessage]:
        """Replies (bot, staff, system) of a conversation with an id above ``after``."""

        def query(session: Session) -> list[OutgoingMessage]:
            rows = session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.direction == "out", Message.id > after)
                .order_by(Message.id)
                .limit(limit)
            ).all()
            return [message_out(r) for r in rows]

        return await self.db.run(query, autocommit=True)
