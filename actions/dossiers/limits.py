"""Abuse limits: failed verifications per sender and per dossier code, over a sliding window.

A code is counted whether or not it exists, so that a lock-out says nothing about existence either. The limit per
code means someone guessing one dossier's digits from many conversations is stopped too; its price is that such
a person can lock the owner out for the window, which is why the locked message offers a person to talk to.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.dossiers.models import VerificationFailure, utcnow
from actions.dossiers.settings import DossierSettings


def _since(settings: DossierSettings, now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(minutes=settings.lockout_window_minutes)


def sender_locked(session: Session, settings: DossierSettings, sender: str, now: dt.datetime | None = None) -> bool:
    """Whether ``sender`` has used up its failed verifications for the window."""
    since = _since(settings, now or utcnow())
    count = session.scalar(select(func.count()).select_from(VerificationFailure).where(
        VerificationFailure.sender == sender, VerificationFailure.at >= since)) or 0
    return count >= settings.max_failures_per_sender


def code_locked(session: Session, settings: DossierSettings, code: str, now: dt.datetime | None = None) -> bool:
    """Whether the dossier code has had its failed verifications for the window, from anyone."""
    since = _since(settings, now or utcnow())
    count = session.scalar(select(func.count()).select_from(VerificationFailure).where(
        VerificationFailure.code == code, VerificationFailure.at >= since)) or 0
    return count >= settings.max_failures_per_dossier


def locked(session: Session, settings: DossierSettings, sender: str, code: str | None,
           now: dt.datetime | None = None) -> bool:
    """Whether a look-up by ``sender`` (of ``code``, when known) must be refused now."""
    return sender_locked(session, settings, sender, now) or (
        code is not None and code_locked(session, settings, code, now))


def record_failure(session: Session, sender: str, code: str, now: dt.datetime | None = None) -> None:
    """Count one failed verification (the caller commits)."""
    session.add(VerificationFailure(sender=sender, code=code, at=now or utcnow()))
