"""Retention: the look-up audit, the failure counters and handled notifications are kept only as long as needed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from actions.dossiers.models import LookupAudit, Notification, VerificationFailure, utcnow
from actions.dossiers.settings import DossierSettings


@dataclass(frozen=True)
class Purged:
    audit: int
    failures: int
    notifications: int


def purge(session: Session, settings: DossierSettings, now: dt.datetime | None = None) -> Purged:
    """Delete audit rows past ``audit_retention_days``, failures past the lock-out window and sent or
    undeliverable notifications past ``notification_retention_days``; commits."""
    now = now or utcnow()
    audit = session.execute(delete(LookupAudit).where(
        LookupAudit.at < now - dt.timedelta(days=settings.audit_retention_days)))
    failures = session.execute(delete(VerificationFailure).where(
        VerificationFailure.at < now - dt.timedelta(minutes=settings.lockout_window_minutes)))
    notifications = session.execute(delete(Notification).where(
        Notification.state != "pending",
        Notification.created_at < now - dt.timedelta(days=settings.notification_retention_days)))
    session.commit()
    return Purged(*(int(getattr(r, "rowcount", 0) or 0) for r in (audit, failures, notifications)))
