"""Questions the actions ask of the catalog."""

from __future__ import annotations

import math
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

    Syllables are weighted by rarity across all names (``giấy``, ``đăng ký`` say little; ``khai sinh`` a lot),
    and a name scores by how much of it the text covers. The catalog holds tens of procedures, so scoring
    them in Python is cheaper than a full-text index.
    """
    words = set(mention_key(text).split())
    if not words:
        return []
    rows = [(pid, name, [set(c.split()) for c in search_text.split(" | ") if c.strip()])
            for pid, name, search_text in session.execute(
                select(Procedure.id, Procedure.name, Procedure.search_text))]
    doc_freq: dict[str, int] = {}
    for _, _, candidates in rows:
        for word in set().union(*candidates) if candidates else set():
            doc_freq[word] = doc_freq.get(word, 0) + 1
    total = max(len(rows), 1)

    def weight(word: str) -> float:
        return math.log((total + 1) / (doc_freq.get(word, 0) + 0.5))

    text_weight = sum(weight(w) for w in words)
    scored: list[Match] = []
    for pid, name, candidates in rows:
        best = 0.0
        for cwords in candidates:
            shared = sum(weight(w) for w in words & cwords)
            if not shared:
                continue
            coverage = shared / sum(weight(w) for w in cwords)
            best = max(best, coverage * 0.8 + shared / text_weight * 0.2)
        if best >= 0.5:
            scored.append(Match(pid, name, round(best, 3)))
    scored.sort(key=lambda m: (-m.score, m.name))
    return scored[:limit]


def clear_winner(matches: list[Match]) -> Match | None:
    """The top match when it covers a whole name and stands well above the next one."""
    if not matches or matches[0].score < 0.85:
        return None
    if len(matches) > 1 and matches[1].score > matches[0].score - 0.15:
        return None
    return matches[0]
