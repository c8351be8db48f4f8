"""Gateway tables: conversations, their transcript, web chat sessions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

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


class Message(Base):
    """A transcript line: ``direction`` is ``in`` (citizen) or ``out`` (bot or staff)."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "client_id", name="uq_messages_client"),
        Index("ix_messages_conv_id", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))
    sender: Mapped[str] = mapped_column(String(10))  # citizen | bot | staff | system
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # buttons, image, custom
    client_id: Mapped[str | None] = mapped_column(String(100))  # idempotency key given by the channel
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebchatSession(Base):
    """A browser's chat session; only a hash of its bearer token is stored."""

    __tablename__ = "webchat_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
