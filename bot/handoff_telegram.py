"""The Telegram staff group: a supergroup with forum topics, one topic per ticket.

The same bot that talks to citizens is an administrator of the group (it needs *Manage topics*, and with
privacy mode on it only sees every message as an administrator). Outbox rows of channel ``tgstaff`` carry
``{"ticket": id, "text": ..., "keyboard": [...]}``; the first one delivered for a ticket creates its topic
(``createForumTopic``, titled ``#<ticket> · <channel> · <subject>``) and remembers the thread id on the ticket,
so every later post lands in it (``message_thread_id``). ``{"ticket": id, "close": true}`` closes the topic.
A group that is not a forum still works: the posts go to the group itself.

From the group, only messages inside a ticket's topic and presses of the bot's buttons (``hs:claim:<id>``,
``hs:end:<id>``) are taken; they are stored by the intake like any update, keyed ``tgstaff:<thread id>`` so that
one topic's messages are handled in order, and :meth:`bot.handoff.Handoff.staff_update` checks the staff
registry before doing anything.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram import Message as TgMessage
from telegram.error import BadRequest

from bot.channels.base import IncomingMessage, OutgoingMessage
from bot.channels.telegram import Telegram, telegram_errors
from bot.database import Database
from bot.handoff import STAFF_CHANNEL, Handoff
from bot.models import Ticket

log = logging.getLogger(__name__)
NO_TOPIC = 0  # the group is not a forum: post to the group itself


def chat_of(update: Update) -> int | None:
    """The chat an update happened in."""
    if update.callback_query is not None:
        message = update.callback_query.message
        return message.chat.id if message is not None else None
    message = update.message or update.edited_message
    return message.chat.id if message is not None else None


def classify_staff(update: Update) -> IncomingMessage | None:
    """A staff group update as an :class:`IncomingMessage` of channel ``tgstaff`` (``None``: nothing to do)."""
    query = update.callback_query
    if query is not None:
        if not (query.data or "").startswith("hs:") or query.from_user.is_bot:
            return None
        message = query.message
        thread = message.message_thread_id if isinstance(message, TgMessage) else None
        return IncomingMessage(STAFF_CHANNEL, str(thread or 0), query.data or "",
                               display_name=query.from_user.full_name,
                               metadata={"from": query.from_user.id, "callback": True})
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    text = (message.text or "").strip()
    if not text or not message.is_topic_message or not message.message_thread_id:
        return None  # service messages, media, the General topic: nothing to relay
    return IncomingMessage(STAFF_CHANNEL, str(message.message_thread_id), text,
                           display_name=message.from_user.full_name, metadata={"from": message.from_user.id})


class StaffGroup:
    """The outbox channel ``tgstaff``: posts into each ticket's forum topic of the staff group."""

    name = STAFF_CHANNEL

    def __init__(self, telegram: Telegram, group_id: int, db: Database, handoff: Handoff) -> None:
        self.telegram = telegram
        self.group_id = group_id
        self.db = db
        self.handoff = handoff

    def owns(self, update: Update) -> bool:
        return chat_of(update) == self.group_id

    @staticmethod
    def classify(update: Update) -> IncomingMessage | None:
        return classify_staff(update)

    def render(self, session: Session, reply: OutgoingMessage) -> list[dict[str, Any]]:
        """Not used: the handoff layer writes this channel's rows itself."""
        return []

    async def _topic(self, ticket_id: int) -> int:
        """The ticket's thread id, creating its topic on first use."""

        def read(session: Session) -> tuple[int | None, str]:
            ticket = session.get(Ticket, ticket_id)
            if ticket is None:
                return NO_TOPIC, ""
            return ticket.topic_id, self.handoff.topic_title(ticket)

        topic, title = await self.db.run(read)
        if topic is not None:
            return topic
        try:
            async with telegram_errors():
                created = await self.telegram.bot.create_forum_topic(self.group_id, title)
            topic = int(created.message_thread_id)
        except BadRequest as exc:  # not a forum, or the bot may not manage topics
            log.warning("staff group %s: no topic for ticket %s (%s); posting to the group", self.group_id,
                        ticket_id, exc)
            topic = NO_TOPIC

        def remember(session: Session) -> int:
            session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.topic_id.is_(None))
                            .values(topic_id=topic))
            session.commit()
            return session.scalar(select(Ticket.topic_id).where(Ticket.id == ticket_id)) or NO_TOPIC

        return await self.db.run(remember)

    async def deliver(self, recipient: str, body: dict[str, Any]) -> None:
        """Post one message into the ticket's topic (or close the topic)."""
        thread = await self._topic(int(body["ticket"]))
        bot = self.telegram.bot
        if body.get("close"):
            if thread != NO_TOPIC:
                try:
                    async with telegram_errors():
                        await bot.close_forum_topic(int(recipient), thread)
                except BadRequest as exc:  # closed already, or deleted by someone: nothing to do
                    log.info("closeForumTopic %s: %s", thread, exc)
            return
        keyboard = body.get("keyboard")
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton(b["text"], callback_data=b["data"]) for b in keyboard]]) if keyboard else None
        async with telegram_errors(undeliverable=True):
            await bot.send_message(int(recipient), body["text"], reply_markup=markup,
                                   message_thread_id=thread or None)
