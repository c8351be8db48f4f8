"""Staff working hours and holidays, read from configuration (``DVCBOT_HANDOFF_HOURS`` / ``_HOLIDAYS``).

Hours are written the way a post office posts them: ``mon-fri 07:30-11:30, 13:30-17:00; sat 07:30-11:30`` —
day groups separated by ``;``, each a day or a range of days (``mon``…``sun``, or ``t2``…``t7``/``cn``) and one or
more time ranges (``00:00-24:00`` is the whole day). Holidays are ISO dates separated by commas or spaces
(``2025-09-01, 2025-09-02``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
        "t2": 0, "t3": 1, "t4": 2, "t5": 3, "t6": 4, "t7": 5, "cn": 6}
WEEKDAY_NAMES = ("thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật")
SHORT_NAMES = ("T2", "T3", "T4", "T5", "T6", "T7", "CN")
RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
SEARCH_DAYS = 60  # how far ahead the next opening is looked for


@dataclass(frozen=True)
class WorkingHours:
    """When staff answer tickets, in the post office's time zone."""

    days: dict[int, tuple[tuple[dt.time, dt.time], ...]]
    holidays: frozenset[dt.date]
    tz: ZoneInfo

    @classmethod
    def parse(cls, hours: str, holidays: str = "", timezone: str = "Asia/Ho_Chi_Minh") -> WorkingHours:
        """Read the configured hours and holidays.

        Raises:
            ValueError: a part that cannot be read, named in the message.
        """
        days: dict[int, list[tuple[dt.time, dt.time]]] = {}
        for group in filter(None, (g.strip() for g in hours.split(";"))):
            spec, _, ranges = group.partition(" ")
            if not ranges.strip():
                raise ValueError(f"working hours {group!r}: expected days then times, e.g. 'mon-fri 07:30-17:00'")
            for day in _days(spec.lower()):
                for part in filter(None, (r.strip() for r in ranges.split(","))):
                    days.setdefault(day, []).append(_range(part))
        dates = set()
        for item in filter(None, re.split(r"[,\s]+", holidays.strip())):
            try:
                dates.add(dt.date.fromisoformat(item))
            except ValueError as exc:
                raise ValueError(f"holiday {item!r} is not a date like 2025-09-02") from exc
        return cls({d: tuple(sorted(r)) for d, r in days.items()}, frozenset(dates), ZoneInfo(timezone))

    def _intervals(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        if day in self.holidays:
            return []
        return [(dt.datetime.combine(day, start, self.tz), dt.datetime.combine(day, end, self.tz))
                for start, end in self.days.get(day.weekday(), ())]

    def is_open(self, at: dt.datetime) -> bool:
        local = at.astimezone(self.tz)
        return any(start <= local < end for start, end in self._intervals(local.date()))

    def opened_at(self, at: dt.datetime) -> dt.datetime | None:
        """When the current opening began (``None`` while closed)."""
        local = at.astimezone(self.tz)
        return next((start for start, end in self._intervals(local.date()) if start <= local < end), None)

    def closes_at(self, at: dt.datetime) -> dt.datetime | None:
        """When the current opening ends (``None`` while closed)."""
        local = at.astimezone(self.tz)
        return next((end for start, end in self._intervals(local.date()) if start <= local < end), None)

    def next_open(self, at: dt.datetime) -> dt.datetime | None:
        """The next moment staff are at work (``at`` itself while open); ``None`` if none within 60 days."""
        local = at.astimezone(self.tz)
        for offset in range(SEARCH_DAYS):
            for start, end in self._intervals(local.date() + dt.timedelta(days=offset)):
                if local < end:
                    return max(start, local)
        return None

    def open_minutes(self, since: dt.datetime, until: dt.datetime) -> float:
        """Minutes of working time between ``since`` and ``until`` (waiting outside hours does not count)."""
        if until <= since:
            return 0.0
        total = 0.0
        day = since.astimezone(self.tz).date()
        last = until.astimezone(self.tz).date()
        while day <= last:
            for start, end in self._intervals(day):
                overlap = (min(end, until) - max(start, since)).total_seconds()
                total += max(overlap, 0.0)
            day += dt.timedelta(days=1)
        return total / 60

    def describe(self) -> str:
        """The hours as citizens read them: ``T2–T6 07:30–17:00; T7 07:30–11:30``."""
        groups: list[tuple[list[int], tuple[tuple[dt.time, dt.time], ...]]] = []
        for day in sorted(self.days):
            ranges = self.days[day]
            if groups and groups[-1][1] == ranges and groups[-1][0][-1] == day - 1:
                groups[-1][0].append(day)
            else:
                groups.append(([day], ranges))
        parts = []
        for days, ranges in groups:
            names = SHORT_NAMES[days[0]] + (f"–{SHORT_NAMES[days[-1]]}" if len(days) > 1 else "")
            times = ", ".join(f"{s:%H:%M}–{_clock(e)}" for s, e in ranges)
            parts.append(f"{names} {times}")
        return "; ".join(parts)

    def when(self, moment: dt.datetime, now: dt.datetime) -> str:
        """``moment`` in words relative to ``now``: ``13:30 hôm nay``, ``07:30 sáng mai (thứ Bảy, 12/07)``."""
        local, today = moment.astimezone(self.tz), now.astimezone(self.tz).date()
        clock = f"{local:%H:%M}"
        if local.date() == today:
            return f"{clock} hôm nay"
        label = f"{WEEKDAY_NAMES[local.weekday()]}, {local:%d/%m}"
        if local.date() == today + dt.timedelta(days=1):
            return f"{clock} ngày mai ({label})"
        return f"{clock} {label}"


def _clock(value: dt.time) -> str:
    return "24:00" if value == dt.time.max else f"{value:%H:%M}"


def _days(spec: str) -> list[int]:
    if "-" in spec:
        first, _, last = spec.partition("-")
        if first not in DAYS or last not in DAYS:
            raise ValueError(f"working hours: unknown days {spec!r} (use mon..sun or t2..t7, cn)")
        start, end = DAYS[first], DAYS[last]
        return list(range(start, end + 1)) if start <= end else [*range(start, 7), *range(0, end + 1)]
    out = []
    for name in spec.split(","):
        if name not in DAYS:
            raise ValueError(f"working hours: unknown day {name!r} (use mon..sun or t2..t7, cn)")
        out.append(DAYS[name])
    return out


def _range(text: str) -> tuple[dt.time, dt.time]:
    match = RANGE.match(text)
    if not match:
        raise ValueError(f"working hours: {text!r} is not a time range like 07:30-17:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        start = dt.time(h1, m1)
        end = dt.time.max if (h2, m2) == (24, 0) else dt.time(h2, m2)  # "00:00-24:00": the whole day
    except ValueError as exc:
        raise ValueError(f"working hours: {text!r} is not a valid time range") from exc
    if end <= start:
        raise ValueError(f"working hours: {text!r} ends before it starts")
    return start, end
