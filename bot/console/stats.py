"""What supervisors measure: waiting and handling times, tickets per day, ratings, top subjects, per staff.

Waiting time counts working time only (a ticket left overnight did not keep anyone waiting for staff at work);
handling time is from the claim to the end.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.handoff_hours import WorkingHours
from bot.models import StaffMember, Ticket, utcnow
from bot.texts import GatewayTexts

BUCKETS = ((1, "<1"), (3, "1–3"), (5, "3–5"), (10, "5–10"), (30, "10–30"), (60, "30–60"), (float("inf"), ">60"))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def buckets(minutes: list[float]) -> list[tuple[str, float]]:
    counts = Counter(next(label for limit, label in BUCKETS if m < limit) for m in minutes)
    return [(label, float(counts[label])) for _, label in BUCKETS]


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else 0.0


@dataclass
class StaffLine:
    name: str
    handled: int
    handle_avg: float
    rating_avg: float | None


@dataclass
class Report:
    days: int
    opened: int = 0
    claimed: int = 0
    cancelled: int = 0
    open_now: int = 0
    wait_avg: float = 0.0
    wait_median: float = 0.0
    wait_p90: float = 0.0
    handle_avg: float = 0.0
    handle_median: float = 0.0
    rating_avg: float | None = None
    ratings_given: int = 0
    ratings_asked: int = 0
    per_day: list[tuple[str, float]] = field(default_factory=list)
    wait_buckets: list[tuple[str, float]] = field(default_factory=list)
    handle_buckets: list[tuple[str, float]] = field(default_factory=list)
    ratings: list[tuple[str, float]] = field(default_factory=list)
    subjects: list[tuple[str, float]] = field(default_factory=list)
    reasons: list[tuple[str, float]] = field(default_factory=list)
    staff: list[StaffLine] = field(default_factory=list)


def report(session: Session, hours: WorkingHours, texts: GatewayTexts, days: int = 14,
           now: dt.datetime | None = None) -> Report:
    """The supervisor's figures over the last ``days`` days (today included)."""
    now = now or utcnow()
    today = now.astimezone(hours.tz).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time(), hours.tz)
    tickets = list(session.scalars(select(Ticket).where(Ticket.opened_at >= start)))
    names = {m.id: m.display_name for m in session.scalars(select(StaffMember))}
    out = Report(days=days, opened=len(tickets))
    waits, handles = [], []
    per_day: Counter[dt.date] = Counter()
    subjects: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    by_staff: dict[int, list[Ticket]] = {}
    for t in tickets:
        opened = _aware(t.opened_at)
        per_day[opened.astimezone(hours.tz).date()] += 1
        subjects[t.procedure_name or texts.label("reasons", t.reason)] += 1
        reasons[texts.label("reasons", t.reason)] += 1
        out.cancelled += t.status == "cancelled"
        out.open_now += t.status in ("waiting", "claimed")
        if t.claimed_at is not None:
            out.claimed += 1
            waits.append(hours.open_minutes(opened, _aware(t.claimed_at)))
            if t.closed_at is not None and t.status == "closed":
                handles.append((_aware(t.closed_at) - _aware(t.claimed_at)).total_seconds() / 60)
        if t.claimed_by is not None and t.status == "closed":
            by_staff.setdefault(t.claimed_by, []).append(t)
    given = [t.rating for t in tickets if t.rating is not None]
    out.ratings_given = len(given)
    out.ratings_asked = sum(t.rating_state is not None for t in tickets)
    out.rating_avg = sum(given) / len(given) if given else None
    if waits:
        out.wait_avg, out.wait_median, out.wait_p90 = sum(waits) / len(waits), statistics.median(waits), _p90(waits)
    if handles:
        out.handle_avg, out.handle_median = sum(handles) / len(handles), statistics.median(handles)
    out.per_day = [((first + dt.timedelta(days=i)).strftime("%d/%m"), float(per_day[first + dt.timedelta(days=i)]))
                   for i in range(days)]
    out.wait_buckets, out.handle_buckets = buckets(waits), buckets(handles)
    ratings = Counter(given)
    out.ratings = [(str(i), float(ratings[i])) for i in range(1, 6)]
    out.subjects = [(k, float(v)) for k, v in subjects.most_common(10)]
    out.reasons = [(k, float(v)) for k, v in reasons.most_common()]
    for staff_id, handled in sorted(by_staff.items(), key=lambda kv: -len(kv[1])):
        minutes = [(_aware(t.closed_at) - _aware(t.claimed_at)).total_seconds() / 60 for t in handled
                   if t.closed_at is not None and t.claimed_at is not None]
        rated = [t.rating for t in handled if t.rating is not None]
        out.staff.append(StaffLine(names.get(staff_id, "?"), len(handled), sum(minutes) / len(minutes)
                                   if minutes else 0.0, sum(rated) / len(rated) if rated else None))
    return out
