"""Gateway tables: conversations and their transcript, inbound updates, the outbox, channel state, and the
handoff to staff (staff accounts, tickets and their events, console sessions and login attempts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from dvcbot.db import Base


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Conversation(Base):
    """One citizen on one channel; ``key`` is the Rasa sender id ``<channel>:<platform user id>``."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(10), default="bot")  # bot | waiting | staff
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_activity_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def user_id(self) -> str:
        """The platform's id of the citizen (or chat) this conversation is with."""
        return self.key.split(":", 1)[1]


class InboundUpdate(Base):
    """A platform update, stored before it is acknowledged; ``(channel, platform_id)`` makes redelivery harmless.

    ``message`` is the channel-neutral :class:`bot.channels.base.IncomingMessage` the update stands for, so that
    processing (possibly after a restart, possibly on another replica) needs nothing from the platform.
    """

    __tablename__ = "inbound_updates"
    __table_args__ = (
        UniqueConstraint("channel", "platform_id", name="uq_inbound_updates_platform"),
        Index("ix_inbound_updates_pending", "status", "conversation_key", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    platform_id: Mapped[str] = mapped_column(String(200))
    conversation_key: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int | None] = mapped_column(BigInteger)  # the platform's own order (Telegram update_id), if any
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """A transcript line: ``direction`` is ``in`` (citizen) or ``out`` (bot or staff)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conv_id", "conversation_id", "id"),
        Index("ix_messages_inbound", "inbound_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))
    sender: Mapped[str] = mapped_column(String(10))  # citizen | bot | staff | system
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # buttons, image, custom, location
    # the inbound update this line is (``in``) or answers (``out``)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_updates.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxEntry(Base):
    """One platform API call still to make (or made): a reply chunk already in the platform's form.

    A row is ``pending`` until the platform accepts it (``sent``) or refuses it for good (``failed``, with the
    reason); ``not_before`` holds retry delays, ``leased_until`` marks a row a sender is working on.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "channel", "status", "recipient", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ButtonPayload(Base):
    """A button payload too long for the platform's callback data (Telegram: 64 bytes), referred to by id."""

    __tablename__ = "button_payloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the payload
    payload: Mapped[str] = mapped_column(Text)


class ChannelToken(Base):
    """Rotating platform credentials (Zalo's access and refresh tokens), kept across restarts and replicas."""

    __tablename__ = "channel_tokens"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    seed: Mapped[str] = mapped_column(String(64))  # digest of the configured refresh token these derive from
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class WebchatSession(Base):
    """A browser's chat session; only a hash of its bearer token is stored."""

    __tablename__ = "webchat_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StaffMember(Base):
    """A postal staff member, supervisor or editor: a console account and/or a Telegram user in the staff group.

    Only active members can claim or answer tickets; ``password_hash`` is empty for Telegram-only staff.
    """

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))  # shown to citizens ("Chị Lan")
    role: Mapped[str] = mapped_column(String(12), default="staff")  # staff | supervisor | editor
    password_hash: Mapped[str | None] = mapped_column(String(300))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Ticket(Base):
    """One handoff of a conversation to staff: ``waiting`` → ``claimed`` → ``closed`` (or ``cancelled``).

    What staff need to pick it up is kept with it (reason, channel, name, procedure, the last messages), and the
    times supervisors measure (opened, claimed, closed) and the citizen's rating.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status", "status", "id"),
        Index("ix_tickets_conversation", "conversation_id", "id"),
        Index("ix_tickets_topic", "topic_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10), default="waiting")  # waiting | claimed | closed | cancelled
    reason: Mapped[str] = mapped_column(String(30))  # human_handoff | complaint | fallback | unavailable | staff
    channel: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str] = mapped_column(String(200))
    procedure_id: Mapped[str | None] = mapped_column(String(80))
    procedure_name: Mapped[str | None] = mapped_column(String(300))
    last_messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    opened_message_id: Mapped[int | None] = mapped_column(Integer)  # the transcript's last line at opening
    out_of_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    close_reason: Mapped[str | None] = mapped_column(String(20))  # staff | citizen | silence
    closed_message_id: Mapped[int | None] = mapped_column(Integer)  # the transcript's last line of the ticket
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_state: Mapped[str | None] = mapped_column(String(10))  # asked | given | skipped
    topic_id: Mapped[int | None] = mapped_column(BigInteger)  # the staff group's forum topic (0: none)
    last_citizen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_staff_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    acked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # last "noted" to the citizen
    citizen_notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # the "still waiting"
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # last reminder to staff
    transfers: Mapped[int] = mapped_column(Integer, default=0)


class TicketEvent(Base):
    """What happened to a ticket and who did it (opened, claimed, transferred, reminded, closed, rated)."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleSession(Base):
    """A web console login; only a hash of the cookie's token is stored, with the form (CSRF) token."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class LoginAttempt(Base):
    """A failed console login, counted per account and per address for the lock-out."""

    __tablename__ = "console_login_failures"
    __table_args__ = (Index("ix_console_login_failures_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def finish_inbound(session: Session, inbound_id: int) -> bool:
    """Mark inbound update ``inbound_id`` done in the current transaction; ``False`` if it was done already."""
    result = session.execute(
        update(InboundUpdate).where(InboundUpdate.id == inbound_id, InboundUpdate.status == "pending")
        .values(status="done", processed_at=utcnow())
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]

