"""Notifications: a verified citizen follows a dossier; a change to it becomes one message for the outbox.

``detect_changes`` may run anywhere (after a status change, on a timer, in several processes at once): it writes
at most one ``dossier_notifications`` row per subscription and history step, enforced by the database, so the
citizen hears about a change exactly once across restarts and concurrent runs. When several steps happened
since the last run, the citizen is told the latest one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from actions.dossiers.models import Dossier, Notification, StatusChange, Subscription, utcnow
from actions.dossiers.sources import view_of
from actions.dossiers.texts import notification_text, parts


def _insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ``ON CONFLICT DO NOTHING`` on the engine's dialect (SQLite or PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def latest_step(session: Session, dossier_id: int) -> int | None:
    """The id of the dossier's newest history row."""
    return session.scalar(select(func.max(StatusChange.id)).where(StatusChange.dossier_id == dossier_id))


def subscribe(session: Session, dossier_id: int, conversation_key: str, now: dt.datetime | None = None) -> None:
    """Follow the dossier from its current step on (again, if the subscription had been cancelled); commits."""
    when = now or utcnow()
    current = latest_step(session, dossier_id)
    session.execute(_insert(session, Subscription).values(
        dossier_id=dossier_id, conversation_key=conversation_key, created_at=when, last_history_id=current,
    ).on_conflict_do_nothing(index_elements=["dossier_id", "conversation_key"]))
    session.execute(update(Subscription).where(
        Subscription.dossier_id == dossier_id, Subscription.conversation_key == conversation_key,
        Subscription.cancelled_at.is_not(None),
    ).values(cancelled_at=None, created_at=when, last_history_id=current))
    session.commit()


def cancel(session: Session, conversation_key: str, now: dt.datetime | None = None) -> int:
    """Stop every notification for the conversation; returns how many subscriptions were active. Commits."""
    result = session.execute(update(Subscription).where(
        Subscription.conversation_key == conversation_key, Subscription.cancelled_at.is_(None),
    ).values(cancelled_at=now or utcnow()))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def active_subscriptions(session: Session, conversation_key: str) -> int:
    return session.scalar(select(func.count()).select_from(Subscription).where(
        Subscription.conversation_key == conversation_key, Subscription.cancelled_at.is_(None))) or 0


def detect_changes(session: Session, now: dt.datetime | None = None) -> int:
    """Write one pending notification per active subscription whose dossier changed; returns how many. Commits."""
    newest = (select(StatusChange.dossier_id, func.max(StatusChange.id).label("step_id"))
              .group_by(StatusChange.dossier_id).subquery())
    due = session.execute(
        select(Subscription, Dossier, newest.c.step_id)
        .join(Dossier, Dossier.id == Subscription.dossier_id)
        .join(newest, newest.c.dossier_id == Subscription.dossier_id)
        .where(Subscription.cancelled_at.is_(None),
               newest.c.step_id > func.coalesce(Subscription.last_history_id, 0))
        .order_by(Subscription.id)
    ).all()
    fragments = parts()
    written = 0
    for sub, dossier, step_id in due:
        inserted = session.execute(_insert(session, Notification).values(
            subscription_id=sub.id, history_id=step_id, conversation_key=sub.conversation_key,
            text=notification_text(view_of(dossier), fragments), created_at=now or utcnow(), state="pending",
        ).on_conflict_do_nothing(index_elements=["subscription_id", "history_id"]).returning(Notification.id))
        written += inserted.first() is not None
        sub.last_history_id = step_id
    session.commit()
    return written
