"""Transcripts keep personal numbers masked and verification digits hidden; old personal data is purged."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.channels.base import IncomingMessage
from bot.models import Conversation, InboundUpdate, Message, utcnow
from bot.retention import purge
from dvcbot.logmask import mask_transcript


def test_transcript_text_is_masked() -> None:
    assert mask_transcript("4567") == "****"
    assert mask_transcript(" 0000 ") == "****"
    assert mask_transcript("sđt tôi 0912 345 678, cccd 001099012345") == "sđt tôi **** *** 678, cccd *********345"
    assert mask_transcript("năm 2024 tôi nộp hồ sơ") == "năm 2024 tôi nộp hồ sơ"
    assert mask_transcript("mã 000.00.04.h26 261112 0012, sđt 0912345678") == \
        "mã 000.00.04.h26 261112 0012, sđt *******678"
    assert IncomingMessage("webchat", "u", "4567").transcript_text == "****"
    assert IncomingMessage("webchat", "u", "/x", shown_text="gọi 0987654321").transcript_text == "gọi *******321"


def test_purge_deletes_only_what_is_past_retention(engine: Engine) -> None:
    now = utcnow()
    with Session(engine) as session:
        conv = Conversation(key="webchat:a", channel="webchat")
        session.add(conv)
        session.flush()
        for age_days in (1, 200):
            session.add(Message(conversation_id=conv.id, direction="in", sender="citizen", text=f"{age_days}",
                                created_at=now - dt.timedelta(days=age_days)))
        for i, (hours, status) in enumerate(((1, "done"), (72, "done"), (72, "pending"))):
            session.add(InboundUpdate(channel="telegram", platform_id=str(i), conversation_key="telegram:1",
                                      message={}, status=status, received_at=now - dt.timedelta(hours=hours)))
        session.commit()
        assert purge(session, transcript_days=180, inbound_hours=48, now=now) == (1, 1)
        assert session.scalars(select(Message.text)).all() == ["1"]
        assert session.scalar(select(func.count()).select_from(InboundUpdate)) == 2
        assert purge(session, transcript_days=180, inbound_hours=48, now=now) == (0, 0)
