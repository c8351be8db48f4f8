"""Catalog tables, owned by the action server."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dvcbot.db import Base


class Procedure(Base):
    """One administrative procedure as the catalog describes it."""

    __tablename__ = "catalog_procedures"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    field: Mapped[str] = mapped_column(String(120))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    code: Mapped[str | None] = mapped_column(String(40))
    authority_level: Mapped[str | None] = mapped_column(String(20))
    authority_name: Mapped[str | None] = mapped_column(Text)
    applicants: Mapped[str | None] = mapped_column(Text)
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    processing_time: Mapped[str | None] = mapped_column(Text)
    fee_amount: Mapped[str | None] = mapped_column(Text)
    fee_exemptions: Mapped[list[str]] = mapped_column(JSON, default=list)
    fee_online_reduction: Mapped[str | None] = mapped_column(Text)
    online_level: Mapped[str | None] = mapped_column(String(10))
    online_portals: Mapped[list[str]] = mapped_column(JSON, default=list)
    online_url: Mapped[str | None] = mapped_column(Text)
    agent_can_file: Mapped[bool | None] = mapped_column(Boolean)
    delivery_by_post: Mapped[bool | None] = mapped_column(Boolean)
    legal_basis: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    verified_on: Mapped[dt.date] = mapped_column(Date)
    source_file: Mapped[str] = mapped_column(String(200))
    search_text: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))


class ProcedureGroup(Base):
    """A generic mention ("căn cước") that stands for several procedures the citizen must choose from."""

    __tablename__ = "catalog_groups"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    question: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
