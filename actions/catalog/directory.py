"""The post-office directory (``data/post_offices.yml``): format checks, table, loading and look-ups."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import JSON, Boolean, Date, Float, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from actions.catalog.schema import ID_PATTERN, mention_key
from actions.catalog.yamlsource import SourceError, read_yaml
from dvcbot.db import Base

PREFIXES = ("phuong", "xa", "thi tran", "quan", "huyen", "thi xa", "p.", "q.", "p", "q", "tx")


class PostOfficeRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=3)
    address: str = Field(min_length=3)
    ward: str | None = None
    old_district: str | None = None
    province: str | None = None
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    opening_hours: str | None = None
    phone: str | None = None
    agent_service: bool | None = None
    verified: bool = False
    source: str | None = None
    verified_on: dt.date | None = None


class DirectoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    post_offices: list[PostOfficeRecord] = Field(min_length=1)


class PostOffice(Base):
    __tablename__ = "post_offices"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    address: Mapped[str] = mapped_column(Text)
    ward: Mapped[str | None] = mapped_column(String(200))
    old_district: Mapped[str | None] = mapped_column(String(200))
    province: Mapped[str | None] = mapped_column(String(100))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    opening_hours: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(50))
    agent_service: Mapped[bool | None] = mapped_column(Boolean)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(Text)
    verified_on: Mapped[dt.date | None] = mapped_column(Date)
    place_keys: Mapped[list[str]] = mapped_column(JSON, default=list)


def place_key(name: str) -> str:
    """A ward or district name without case, diacritics or its administrative prefix."""
    key = mention_key(name)
    for prefix in PREFIXES:
        if key.startswith(prefix + " "):
            return key[len(prefix) + 1:].strip()
    return key


def read_directory(path: Path, root: Path | None = None) -> tuple[list[PostOfficeRecord], list[SourceError]]:
    doc = read_yaml(path, root)
    if isinstance(doc, SourceError):
        return [], [doc]
    try:
        parsed = DirectoryFile.model_validate(doc.data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            errors.append(SourceError(doc.file, doc.line_of(tuple(err["loc"])), f"{where}: {err['msg']}"))
        return [], errors
    errors, seen = [], set()
    for i, rec in enumerate(parsed.post_offices):
        if rec.id in seen:
            errors.append(SourceError(doc.file, doc.line_of(("post_offices", i, "id")), f"id {rec.id!r} is repeated"))
        seen.add(rec.id)
    return parsed.post_offices, errors


def load_directory(session: Session, records: list[PostOfficeRecord]) -> int:
    """Replace the directory's rows with ``records``; returns how many there are. Commits."""
    existing = {p.id: p for p in session.scalars(select(PostOffice))}
    for rec in records:
        values: dict[str, Any] = rec.model_dump()
        values["place_keys"] = sorted({place_key(n) for n in (rec.ward, rec.old_district) if n})
        row = existing.pop(rec.id, None)
        if row is None:
            session.add(PostOffice(**values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
    for row in existing.values():
        session.delete(row)
    session.commit()
    return len(records)


@dataclass(frozen=True)
class Nearby:
    office: PostOffice
    km: float | None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def nearest(session: Session, lat: float, lon: float, limit: int = 3) -> list[Nearby]:
    rows = session.scalars(select(PostOffice)).all()
    ranked = sorted((Nearby(r, distance_km(lat, lon, r.lat, r.lon)) for r in rows), key=lambda n: n.km or 0.0)
    return ranked[:limit]


def in_place(session: Session, text: str, limit: int = 3) -> list[Nearby]:
    """Post offices whose ward or old district is named in ``text`` (verified ones first)."""
    key = place_key(text)
    words = f" {mention_key(text)} "
    rows = session.scalars(select(PostOffice)).all()
    hits = [r for r in rows if key in r.place_keys or any(f" {k} " in words for k in r.place_keys)]
    hits.sort(key=lambda r: (not r.verified, r.name))
    return [Nearby(r, None) for r in hits[:limit]]
