"""Load the checked catalog into the database, idempotently, and say what changed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.catalog.models import Procedure, ProcedureGroup
from actions.catalog.schema import Catalog, GroupRecord, ProcedureRecord, mention_key


@dataclass
class LoadReport:
    """What a load did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.removed)} removed",
                 f"{self.unchanged} unchanged"]
        return ", ".join(parts)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def _procedure_values(rec: ProcedureRecord, field_name: str, file: str) -> dict[str, Any]:
    names = [rec.name, *rec.aliases]
    return {
        "name": rec.name,
        "field": field_name,
        "aliases": list(rec.aliases),
        "code": rec.code,
        "authority_level": rec.authority.level,
        "authority_name": rec.authority.name,
        "applicants": rec.applicants,
        "documents": [d.model_dump() for d in rec.documents],
        "steps": list(rec.steps),
        "processing_time": rec.processing_time,
        "fee_amount": rec.fees.amount,
        "fee_exemptions": list(rec.fees.exemptions),
        "fee_online_reduction": rec.fees.online_reduction,
        "online_level": rec.online.level,
        "online_portals": list(rec.online.portals),
        "online_url": rec.online.url,
        "agent_can_file": rec.agent_can_file,
        "delivery_by_post": rec.delivery_by_post,
        "legal_basis": list(rec.legal_basis),
        "notes": rec.notes,
        "sources": list(rec.sources),
        "verified_on": rec.verified_on,
        "source_file": file,
        "search_text": " | ".join(mention_key(n) for n in names),
    }


def _group_values(grp: GroupRecord) -> dict[str, Any]:
    return {"names": list(grp.names), "question": grp.question, "choices": list(grp.choices)}


def load_catalog(session: Session, catalog: Catalog) -> LoadReport:
    """Upsert every procedure and group; delete those no longer in the files. Commits."""
    report = LoadReport()
    existing = {p.id: p for p in session.scalars(select(Procedure))}
    for pid, (file, rec) in catalog.procedures.items():
        values = _procedure_values(rec, catalog.fields[pid], file)
        digest = _hash(values)
        row = existing.pop(pid, None)
        if row is None:
            session.add(Procedure(id=pid, content_hash=digest, **values))
            report.added.append(pid)
        elif row.content_hash != digest:
            for key, value in values.items():
                setattr(row, key, value)
            row.content_hash = digest
            report.updated.append(pid)
        else:
            report.unchanged += 1
    for pid, row in existing.items():
        session.delete(row)
        report.removed.append(pid)

    groups = {g.id: g for g in session.scalars(select(ProcedureGroup))}
    for gid, grp in catalog.groups.items():
        values = _group_values(grp)
        digest = _hash(values)
        grow = groups.pop(gid, None)
        if grow is None:
            session.add(ProcedureGroup(id=gid, content_hash=digest, **values))
            report.added.append(f"group:{gid}")
        elif grow.content_hash != digest:
            for key, value in values.items():
                setattr(grow, key, value)
            grow.content_hash = digest
            report.updated.append(f"group:{gid}")
        else:
            report.unchanged += 1
    for gid, grow in groups.items():
        session.delete(grow)
        report.removed.append(f"group:{gid}")
    session.commit()
    return report
