"""The agent's own register: find a dossier, record a status change (staff, CSV import, console)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.dossiers.models import SHIPMENT_STATUSES, STATUSES, Dossier, StatusChange, utcnow


class StatusError(ValueError):
    """A status change that the register refuses (unknown code or status, missing detail)."""


@dataclass(frozen=True)
class Change:
    """A new status for a dossier, as staff enter it."""

    status: str
    detail: str | None = None
    shipment_code: str | None = None
    shipment_status: str | None = None


def find(session: Session, code: str) -> Dossier | None:
    """The register's dossier with this canonical code."""
    return session.scalar(select(Dossier).where(Dossier.code == code))


def check_change(change: Change) -> str | None:
    """Why ``change`` cannot be recorded, or ``None`` when it can."""
    if change.status not in STATUSES:
        return f"unknown status {change.status!r} (one of: {', '.join(STATUSES)})"
    if change.status == "additional_documents" and not change.detail:
        return "status additional_documents needs the missing documents as its detail"
    if change.shipment_status is not None and change.shipment_status not in SHIPMENT_STATUSES:
        return f"unknown shipment status {change.shipment_status!r} (one of: {', '.join(SHIPMENT_STATUSES)})"
    return None


def record(session: Session, dossier: Dossier, change: Change, source: str,
           at: dt.datetime | None = None) -> StatusChange | None:
    """Append ``change`` to the dossier's history and make it current; ``None`` if nothing changed.

    Shipment fields left empty keep their current values. The caller commits.
    """
    problem = check_change(change)
    if problem:
        raise StatusError(problem)
    shipment_code = change.shipment_code or dossier.shipment_code
    shipment_status = change.shipment_status or dossier.shipment_status
    if shipment_status and not shipment_code:
        raise StatusError("a shipment status needs a shipment code")
    current = (dossier.status, dossier.status_detail, dossier.shipment_code, dossier.shipment_status)
    if current == (change.status, change.detail, shipment_code, shipment_status):
        return None
    when = at or utcnow()
    step = StatusChange(status=change.status, detail=change.detail, shipment_code=shipment_code,
                        shipment_status=shipment_status, changed_at=when, source=source)
    dossier.status, dossier.status_detail = change.status, change.detail
    dossier.shipment_code, dossier.shipment_status = shipment_code, shipment_status
    if shipment_code:
        dossier.delivery = "post"
    dossier.updated_at = when
    session.add(dossier)
    session.flush()
    step.dossier_id = dossier.id
    session.add(step)
    session.flush()
    return step


def set_status(session: Session, code: str, change: Change, source: str = "staff") -> StatusChange | None:
    """Record a staff member's status change for the dossier ``code``; commits. Raises ``StatusError``."""
    dossier = find(session, code)
    if dossier is None:
        raise StatusError(f"no dossier {code} in the register")
    step = record(session, dossier, change, source)
    session.commit()
    return step
