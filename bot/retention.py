"""Old personal data goes: transcript lines after ``DVCBOT_TRANSCRIPT_RETENTION_DAYS``, handled platform updates
(which hold the citizen's raw text) after ``DVCBOT_INBOUND_RETENTION_HOURS`` — long enough for any platform's
redelivery to still be recognised."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot.database import Database
from bot.models import InboundUpdate, Message, utcnow

log = logging.getLogger(__name__)


def purge(session: Session, transcript_days: int, inbound_hours: int, now: dt.datetime | None = None
          ) -> tuple[int, int]:
    """Delete what is past its retention; returns (transcript lines, platform updates) deleted. Commits."""
    now = now or utcnow()
    lines = session.execute(delete(Message).where(Message.created_at < now - dt.timedelta(days=transcript_days)))
    updates = session.execute(delete(InboundUpdate).where(
        InboundUpdate.status != "pending", InboundUpdate.received_at < now - dt.timedelta(hours=inbound_hours)))
    session.commit()
    return int(getattr(lines, "rowcount", 0) or 0), int(getattr(updates, "rowcount", 0) or 0)


async def run(db: Database, transcript_days: int, inbound_hours: int, every: float = 3600.0) -> None:
    """Purge now and then every ``every`` seconds (a gateway background task)."""
    while True:
        try:
            lines, updates = await db.run(lambda s: purge(s, transcript_days, inbound_hours))
            if lines or updates:
                log.info("retention: %d transcript line(s) and %d platform update(s) deleted", lines, updates)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be restarting: next round
            log.exception("retention purge failed")
        await asyncio.sleep(every)
