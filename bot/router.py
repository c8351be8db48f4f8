"""The conversation router: stores what citizens say, asks Rasa (or, later, staff), stores the replies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import Button, IncomingMessage, OutgoingMessage
from bot.locks import ConversationLocks, LocalLocks
from bot.models import Conversation, Message, utcnow
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.texts import GatewayTexts

log = logging.getLogger(__name__)
T = TypeVar("T")


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


class Router:
    """Routes one citizen message to the bot and records the whole exchange."""

    def __init__(
        self, sessions: sessionmaker[Session], rasa: RasaClient, texts: GatewayTexts,
        locks: ConversationLocks | None = None,
    ) -> None:
        self.sessions = sessions
        self.rasa = rasa
        self.texts = texts
        self.locks = locks or LocalLocks()

    async def db(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.sessions() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(run)

    def conversation(self, session: Session, key: str, channel: str, display_name: str | None) -> Conversation:
        conv = session.scalar(select(Conversation).where(Conversation.key == key))
        if conv is None:
            conv = Conversation(key=key, channel=channel, display_name=display_name)
            session.add(conv)
            try:
                session.flush()
            except IntegrityError:  # created concurrently by another worker
                session.rollback()
                conv = session.scalars(select(Conversation).where(Conversation.key == key)).one()
        return conv

    async def handle(self, msg: IncomingMessage) -> list[OutgoingMessage]:
        """Process one citizen message and return the replies (already stored in the transcript)."""
        async with self.locks.hold(msg.conversation_key):
            stored = await self.db(lambda s: self._store_incoming(s, msg))
            if stored.duplicate_replies is not None:
                return stored.duplicate_replies
            if stored.mode != "bot":
                return []  # relayed to staff by the handoff layer
            replies = await self._ask_rasa(msg)
            return await self.db(lambda s: self._store_replies(s, stored.conversation_id, replies))

    class _Stored:
        def __init__(self, conversation_id: int, mode: str, duplicate_replies: list[OutgoingMessage] | None):
            self.conversation_id = conversation_id
            self.mode = mode
            self.duplicate_replies = duplicate_replies

    def _store_incoming(self, session: Session, msg: IncomingMessage) -> Router._Stored:
        conv = self.conversation(session, msg.conversation_key, msg.channel, msg.display_name)
        if msg.client_id:
            prior = session.scalar(
                select(Message).where(Message.conversation_id == conv.id, Message.client_id == msg.client_id)
            )
            if prior is not None:
                nxt = session.scalar(
                    select(Message.id).where(
                        Message.conversation_id == conv.id, Message.direction == "in", Message.id > prior.id
                    ).order_by(Message.id).limit(1)
                )
                query = select(Message).where(
                    Message.conversation_id == conv.id, Message.direction == "out", Message.id > prior.id
                )
                if nxt is not None:
                    query = query.where(Message.id < nxt)
                rows = session.scalars(query.order_by(Message.id)).all()
                return Router._Stored(conv.id, conv.mode, [message_out(r) for r in rows])
        session.add(
            Message(
                conversation_id=conv.id, direction="in", sender="citizen",
                text=msg.shown_text or msg.text,
                payload={"payload": msg.text} if msg.shown_text else None,
                client_id=msg.client_id,
            )
        )
        conv.last_activity_at = utcnow()
        if msg.display_name:
            conv.display_name = msg.display_name
        session.commit()
        return Router._Stored(conv.id, conv.mode, None)

    async def _ask_rasa(self, msg: IncomingMessage) -> list[OutgoingMessage]:
        metadata: dict[str, Any] = {"channel": msg.channel, "locale": "vi"}
        if msg.display_name:
            metadata["display_name"] = msg.display_name
        try:
            raw = await self.rasa.send(msg.conversation_key, msg.text, metadata)
        except RasaUnavailable as exc:
            log.warning("rasa unavailable for %s: %s", msg.channel, exc)
            return [self.texts.message("unavailable")]
        replies = [OutgoingMessage.from_rasa(item) for item in raw]
        if not any(r.visible or r.custom for r in replies):
            # Rasa answered but produced nothing to show: an action failed behind it.
            log.warning("rasa returned no visible reply for a %s message", msg.channel)
            return [self.texts.message("unavailable")]
        return replies

    def _store_replies(
        self, session: Session, conversation_id: int, replies: list[OutgoingMessage]
    ) -> list[OutgoingMessage]:
        rows = []
        for reply in replies:
            row = Message(
                conversation_id=conversation_id, direction="out", sender=reply.sender,
                text=reply.text, payload=reply.payload_dict(),
            )
            session.add(row)
            rows.append(row)
        session.commit()
        return [message_out(r) for r in rows]

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

        return await self.db(query)
