"""Questions the actions ask of the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.catalog.models import Procedure, ProcedureGroup
from actions.catalog.schema import mention_key


@dataclass(frozen=True)
class Match:
    procedure_id: str
    name: str
    score: float


def get_procedure(session: Session, procedure_id: str) -> Procedure | None:
    return session.get(Procedure, procedure_id)


def get_group(session: Session, group_id: str) -> ProcedureGroup | None:
    return session.get(ProcedureGroup, group_id)


def search_procedures(session: Session, text: str, limit: int = 3) -> list[Match]:
    """Rank procedures whose names share syllables with ``text``, ignoring case and diacritics.

    The catalog holds tens of procedures, so scoring them in Python is cheaper than a full-text index.
    """
    words = set(mention_key(text).split())
    if not words:
        return []
    scored: list[Match] = []
    for pid, name, search_text in session.execute(
        select(Procedure.id, Procedure.name, Procedure.search_text)
    ):
        best = 0.0
        for candidate in search_text.split(" | "):
            cwords = set(candidate.split())
            if not cwords:
                continue
            overlap = len(words & cwords)
            # share of the name that the text covers, weighted by how much of the text it explains
            score = overlap / len(cwords) * 0.7 + overlap / len(words) * 0.3
            best = max(best, score)
        if best >= 0.5:
            scored.append(Match(pid, name, round(best, 3)))
    scored.sort(key=lambda m: (-m.score, m.name))
    return scored[:limit]
