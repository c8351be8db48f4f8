"""The agent's dossier register and everything kept around a look-up, owned by the action server.

Only what the look-up needs is stored: no applicant name, no CCCD, and of the phone number only its last four
digits (the verification factor). The audit and the failure counters never hold the digits a citizen typed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dvcbot.db import Base

STATUSES = ("received", "processing", "additional_documents", "completed", "sent_by_post", "delivered")
SHIPMENT_STATUSES = ("accepted", "in_transit", "out_for_delivery", "delivered", "returned")
DELIVERIES = ("counter", "post")
OUTCOMES = ("verified", "failed", "locked", "unavailable")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime (SQLite hands stored values back naive)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Dossier(Base):
    """A dossier the post office filed for a citizen; ``status`` mirrors its latest history row."""

    __tablename__ = "dossiers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # canonical form, see codes.extract_code
    procedure_id: Mapped[str | None] = mapped_column(String(80))  # catalog id, when the procedure is in it
    procedure_name: Mapped[str] = mapped_column(String(300))
    received_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(30))
    status_detail: Mapped[str | None] = mapped_column(Text)  # e.g. which documents are missing
    delivery: Mapped[str] = mapped_column(String(10), default="counter")  # counter | post
    shipment_code: Mapped[str | None] = mapped_column(String(40))
    shipment_status: Mapped[str | None] = mapped_column(String(30))
    phone_last4: Mapped[str] = mapped_column(String(4))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StatusChange(Base):
    """One step of a dossier's history; a new row is what notifications react to."""

    __tablename__ = "dossier_status_history"
    __table_args__ = (
        UniqueConstraint("dossier_id", "changed_at", "status", name="uq_dossier_status_history_step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(Text)
    shipment_code: Mapped[str | None] = mapped_column(String(40))
    shipment_status: Mapped[str | None] = mapped_column(String(30))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str] = mapped_column(String(20))  # import | staff | api


class LookupAudit(Base):
    """Who looked up which dossier code, when, and how it ended (one of ``OUTCOMES``); never the digits."""

    __tablename__ = "dossier_lookup_audit"
    __table_args__ = (Index("ix_dossier_lookup_audit_sender_at", "sender", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    sender: Mapped[str] = mapped_column(String(200))  # the conversation key, e.g. webchat:abc
    code: Mapped[str | None] = mapped_column(String(40))
    dossier_id: Mapped[int | None] = mapped_column(ForeignKey("dossiers.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(20))


class VerificationFailure(Base):
    """A failed verification, counted per sender and per code over a sliding window."""

    __tablename__ = "dossier_verification_failures"
    __table_args__ = (
        Index("ix_dossier_verification_failures_sender_at", "sender", "at"),
        Index("ix_dossier_verification_failures_code_at", "code", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sender: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(40))  # counted whether or not the code exists


class Subscription(Base):
    """A conversation that wants to hear about a dossier's next changes; cancelled ones are kept as history."""

    __tablename__ = "dossier_subscriptions"
    __table_args__ = (
        UniqueConstraint("dossier_id", "conversation_key", name="uq_dossier_subscriptions_conversation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id", ondelete="CASCADE"))
    conversation_key: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # the newest history row the citizen has been told about (or that existed when they subscribed)
    last_history_id: Mapped[int | None] = mapped_column(Integer)


class Notification(Base):
    """A message to send to a citizen because a dossier they follow changed.

    Contract with the gateway's outbox, which consumes this table:

    - one row per (subscription, status history row): the uniqueness constraint makes the change detection
      write it exactly once, however often and however concurrently it runs;
    - ``conversation_key`` is the conversation (``<channel>:<platform user id>``, e.g. ``webchat:abc``,
      ``telegram:123``) to send ``text`` to; ``text`` is final, plain Vietnamese, with no buttons;
    - new rows have ``state = "pending"``; the outbox takes them in ``id`` order, sends them on the citizen's
      channel, and sets ``state`` to ``"sent"`` or, when the channel cannot deliver (e.g. outside Zalo's reply
      window), ``"undeliverable"`` — never retried forever — together with ``handled_at``;
    - rows in a final state older than the retention setting are purged by ``retention.purge``.
    """

    __tablename__ = "dossier_notifications"
    __table_args__ = (
        UniqueConstraint("subscription_id", "history_id", name="uq_dossier_notifications_once"),
        Index("ix_dossier_notifications_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("dossier_subscriptions.id", ondelete="CASCADE"))
    history_id: Mapped[int] = mapped_column(ForeignKey("dossier_status_history.id", ondelete="CASCADE"))
    conversation_key: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | sent | undeliverable
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

