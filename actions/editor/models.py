"""Tables for editors: the inbox of messages the bot did not understand, and the catalog change history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dvcbot.db import Base


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


INBOX_REASONS = ("fallback", "low_confidence")
INBOX_STATES = ("open", "labelled", "dismissed")


class InboxItem(Base):
    """One citizen message that went to fallback or was predicted with low confidence.

    ``text`` is already masked (CCCD and phone numbers replaced); ``normalized`` is the normaliser's output of the
    masked text and is what similar messages are grouped by.
    """

    __tablename__ = "editor_inbox"
    __table_args__ = (Index("ix_editor_inbox_state_created", "state", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sender_hash: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20), default="")
    message_id: Mapped[str | None] = mapped_column(String(80), unique=True)
    text: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(String(20))
    intent: Mapped[str | None] = mapped_column(String(80))
    confidence: Mapped[float | None] = mapped_column(Float)
    ranking: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    entities: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(12), default="open")
    label_intent: Mapped[str | None] = mapped_column(String(80))
    label_procedure: Mapped[str | None] = mapped_column(String(80))
    labelled_by: Mapped[str | None] = mapped_column(String(80))
    labelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    written_to: Mapped[str | None] = mapped_column(String(200))


class CatalogChange(Base):
    """One edit of a catalog record made through the console: who, when, which fields, before and after."""

    __tablename__ = "editor_catalog_changes"
    __table_args__ = (Index("ix_editor_catalog_changes_procedure", "procedure_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    procedure_id: Mapped[str] = mapped_column(String(80))
    editor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(12), default="update")
    file: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
