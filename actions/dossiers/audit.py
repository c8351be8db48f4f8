"""The look-up audit: who looked up which dossier code, when, and the outcome — never the digits typed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.dossiers.models import OUTCOMES, Dossier, LookupAudit, as_utc, utcnow


def record(session: Session, sender: str, code: str | None, outcome: str, now: dt.datetime | None = None) -> None:
    """Add an audit row (the caller commits); the register's dossier is linked when the code is in it."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    dossier_id = session.scalar(select(Dossier.id).where(Dossier.code == code)) if code else None
    session.add(LookupAudit(sender=sender, code=code, dossier_id=dossier_id, outcome=outcome, at=now or utcnow()))


def verified_recently(session: Session, sender: str, code: str, minutes: int, now: dt.datetime | None = None) -> bool:
    """Whether ``sender`` proved within ``minutes`` that the dossier ``code`` is theirs."""
    last = session.scalar(select(LookupAudit.at).where(
        LookupAudit.sender == sender, LookupAudit.code == code, LookupAudit.outcome == "verified",
    ).order_by(LookupAudit.at.desc()).limit(1))
    return last is not None and as_utc(last) >= (now or utcnow()) - dt.timedelta(minutes=minutes)
