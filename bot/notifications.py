"""Dossier notifications: rows the action server's change detection writes to ``dossier_notifications``
(see :class:`actions.dossiers.models.Notification` for the contract) are put into the citizen's conversation
and, for Telegram and Zalo, into the outbox.

Each row is taken once: the transcript line, the outbox rows and the row's new state are committed together,
so a restart neither loses nor repeats one. ``sent`` here means handed to the channel (the web chat reads the
transcript; the outbox records the platform's answer, e.g. a Zalo reply-window refusal, without retrying it);
a row whose conversation does not exist any more becomes ``undeliverable``.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.dossiers.models import Notification
from bot.channels.base import OutgoingMessage
from bot.database import Database
from bot.models import Conversation, Message, utcnow
from bot.outbox import Outbox

log = logging.getLogger(__name__)


class NotificationRelay:
    def __init__(self, db: Database, outbox: Outbox, poll: float = 5.0, batch: int = 50) -> None:
        self.db = db
        self.outbox = outbox
        self.poll = poll
        self.batch = batch

    def relay_once(self, session: Session) -> int:
        """Hand the pending notifications to their conversations; returns how many were handled. Commits."""
        query = select(Notification).where(Notification.state == "pending").order_by(Notification.id)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)  # another replica takes the others
        rows = session.scalars(query.limit(self.batch)).all()
        queued = 0
        for note in rows:
            conv = session.scalar(select(Conversation).where(Conversation.key == note.conversation_key))
            note.handled_at = utcnow()
            if conv is None:
                note.state = "undeliverable"
                continue
            reply = OutgoingMessage(text=note.text, sender="system")
            line = Message(conversation_id=conv.id, direction="out", sender="system", text=note.text)
            session.add(line)
            session.flush()
            queued += self.outbox.add(session, conv, [(reply, line)])
            note.state = "sent"
        session.commit()
        if queued:
            self.outbox.notify()
        return len(rows)

    async def run(self) -> None:
        """Relay forever, every ``poll`` seconds (a gateway background task)."""
        while True:
            try:
                handled = await self.db.run(self.relay_once)
                if handled:
                    log.info("relayed %d dossier notification(s)", handled)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be restarting: try again on the next tick
                log.exception("dossier notifications could not be relayed")
            await asyncio.sleep(self.poll)
