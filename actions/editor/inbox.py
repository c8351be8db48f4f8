"""The editors' inbox: citizen messages the bot did not understand, stored masked, grouped by similarity.

Two ways in, both in the action server (the gateway only sees Rasa's replies):

- ``action_fallback`` records its message with reason ``fallback`` (NLU fallback and core fallback alike);
- ``action_note_message`` (:mod:`actions.editor.inbox_action`) runs after *every* user message, because a slot
  mapping in ``domain/core.yml`` names it (Rasa's ``action_extract_slots`` calls such actions before the policies
  predict), and records messages predicted below ``DVCBOT_INBOX_LOW_CONFIDENCE`` with reason ``low_confidence``
  — whichever action or plain response then answers them.

Text is stored as :func:`dvcbot.logmask.mask_transcript` leaves it (CCCD and phone numbers masked, dossier codes
whole); a reply of four digits (the dossier form's verification) is never stored; the sender only as a hash. One
row per Rasa ``message_id``: a retried action, or both ways above, never store a message twice.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from actions.editor.models import InboxItem
from dvcbot.logmask import VERIFICATION_DIGITS, mask_transcript
from nlu.normalize import LexiconError, iter_words, load_abbreviations, normalize, strip_diacritics

log = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
KEPT_ENTITIES = ("procedure", "location", "dossier_code")  # never phone_digits: they verify a dossier
RANKING_SIZE = 5
MAX_TEXT = 2000
GROUP_SIMILARITY = 0.5
LIST_LIMIT = 500


@lru_cache(maxsize=4)
def abbreviations_at(path: Path) -> dict[str, str]:
    """The abbreviation dictionary (``{}`` when it is missing or broken: grouping then works on plain text)."""
    try:
        return load_abbreviations(str(path))
    except (OSError, LexiconError):
        return {}


def grouping_key(text: str, abbreviations: Mapping[str, str]) -> str:
    """Accent-folded, lower-case, teencode-expanded words of ``text``, as the content check compares examples."""
    return " ".join(iter_words(strip_diacritics(normalize(text, dict(abbreviations)))))


def sender_hash(sender_id: str) -> str:
    return hashlib.sha256(f"dvcbot-inbox:{sender_id}".encode()).hexdigest()


def best_intent(message: Mapping[str, Any]) -> tuple[str | None, float | None, list[dict[str, Any]]]:
    """The likeliest real intent (never ``nlu_fallback``), its confidence, and the top of the ranking."""
    ranking: list[dict[str, Any]] = []
    for entry in message.get("intent_ranking") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name and name != FALLBACK_INTENT and all(r["name"] != name for r in ranking):
            ranking.append({"name": name, "confidence": round(float(entry.get("confidence") or 0.0), 4)})
    intent = message.get("intent") or {}
    name = intent.get("name") if isinstance(intent, dict) else None
    if not ranking and isinstance(name, str) and name and name != FALLBACK_INTENT:
        ranking.append({"name": name, "confidence": round(float(intent.get("confidence") or 0.0), 4)})
    ranking.sort(key=lambda r: -r["confidence"])
    ranking = ranking[:RANKING_SIZE]
    if not ranking:
        return None, None, []
    return ranking[0]["name"], ranking[0]["confidence"], ranking


def kept_entities(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for ent in message.get("entities") or []:
        if isinstance(ent, dict) and ent.get("entity") in KEPT_ENTITIES:
            out.append({"entity": ent["entity"], "value": str(ent.get("value")), "start": ent.get("start"),
                        "end": ent.get("end")})
    return out


def new_item(sender_id: str, message: Mapping[str, Any], reason: str,
             abbreviations: Mapping[str, str]) -> InboxItem | None:
    """The inbox row for a message, or ``None`` for what is never stored (empty, a button, verification digits)."""
    text = message.get("text")
    if not isinstance(text, str) or not text.strip() or text.startswith("/") or VERIFICATION_DIGITS.match(text):
        return None
    masked = mask_transcript(text.strip()[:MAX_TEXT])
    intent, confidence, ranking = best_intent(message)
    metadata = message.get("metadata") or {}
    channel = metadata.get("channel") if isinstance(metadata, dict) else None
    if not isinstance(channel, str) or not channel:
        channel = sender_id.split(":", 1)[0] if ":" in sender_id else ""
    message_id = message.get("message_id")
    # the stored text is stripped: entity offsets follow it (masking keeps every character in place)
    shift = len(text) - len(text.lstrip())
    entities = [{**e, "start": e["start"] - shift, "end": e["end"] - shift}
                if isinstance(e.get("start"), int) and isinstance(e.get("end"), int) else e
                for e in kept_entities(message)]
    return InboxItem(sender_hash=sender_hash(sender_id), channel=channel[:20],
                     message_id=str(message_id)[:80] if message_id else None, text=masked,
                     normalized=grouping_key(masked, abbreviations), reason=reason, intent=intent,
                     confidence=confidence, ranking=ranking, entities=entities, state="open")


def store(session: Session, item: InboxItem) -> bool:
    """Add ``item`` unless its message is already in the inbox; a fallback upgrades a low-confidence entry."""
    if item.message_id:
        existing = session.scalars(select(InboxItem).where(InboxItem.message_id == item.message_id)).first()
        if existing is not None:
            if item.reason == "fallback" and existing.reason != "fallback":
                existing.reason = "fallback"
                session.commit()
            return False
    session.add(item)
    try:
        session.commit()
    except IntegrityError:  # the same message recorded concurrently (a retried action)
        session.rollback()
        return False
    return True


def record(sessions: Any, sender_id: str, message: Mapping[str, Any], reason: str,
           abbreviations: Mapping[str, str]) -> bool:
    """Store a message in the inbox; never raises (the citizen's answer matters more than the inbox).

    ``sessions`` makes a new :class:`~sqlalchemy.orm.Session` when called.
    """
    try:
        item = new_item(sender_id, message, reason, abbreviations)
        if item is None:
            return False
        with sessions() as session:
            return store(session, item)
    except (SQLAlchemyError, OSError) as exc:
        log.error("the editors' inbox could not store a message: %s: %s", type(exc).__name__, exc)
    except Exception:
        log.exception("the editors' inbox could not store a message")
    return False


# --- grouping ---------------------------------------------------------------------------------------------------


def _trigrams(key: str) -> Counter[str]:
    padded = f" {key} "
    return Counter(padded[i:i + 3] for i in range(max(len(padded) - 2, 1)))


@dataclass
class Features:
    words: frozenset[str]
    grams: Counter[str]
    norm: float


def features(key: str) -> Features:
    grams = _trigrams(key)
    return Features(frozenset(key.split()), grams, math.sqrt(sum(v * v for v in grams.values())) or 1.0)


def similarity(a: Features, b: Features) -> float:
    """The larger of word-set Jaccard and character-trigram cosine (which forgives typos)."""
    union = len(a.words | b.words)
    jaccard = len(a.words & b.words) / union if union else 1.0
    small, large = (a, b) if len(a.grams) <= len(b.grams) else (b, a)
    dot = sum(count * large.grams.get(gram, 0) for gram, count in small.grams.items())
    return min(1.0, max(jaccard, dot / (a.norm * b.norm)))


@dataclass
class Group:
    """Similar inbox messages; the first one is the group's representative."""

    items: list[InboxItem] = field(default_factory=list)

    @property
    def key(self) -> int:
        return self.items[0].id

    @property
    def intents(self) -> list[tuple[str, int]]:
        """The predicted intents of the group, most frequent first."""
        return Counter(i.intent or "?" for i in self.items).most_common()

    @property
    def top_intent(self) -> str | None:
        return self.intents[0][0] if self.items and self.intents[0][0] != "?" else None

    @property
    def fallbacks(self) -> int:
        return sum(1 for i in self.items if i.reason == "fallback")


def group_items(items: Iterable[InboxItem], threshold: float = GROUP_SIMILARITY) -> list[Group]:
    """Greedy clustering: each message joins the group whose representative it is most similar to (at least
    ``threshold``), else starts one. Largest groups first, then the most recent."""
    groups: list[tuple[Features, Group]] = []
    for item in items:
        feats = features(item.normalized or item.text.lower())
        best, best_score = None, threshold
        for rep, group in groups:
            score = similarity(feats, rep)
            if score >= best_score:
                best, best_score = group, score
        if best is None:
            groups.append((feats, Group([item])))
        else:
            best.items.append(item)
    result = [g for _, g in groups]
    result.sort(key=lambda g: (-len(g.items), -max(i.id for i in g.items)))
    return result


def open_items(session: Session, limit: int = LIST_LIMIT) -> list[InboxItem]:
    """Open items, newest first (at most ``limit``)."""
    return list(session.scalars(select(InboxItem).where(InboxItem.state == "open")
                                .order_by(InboxItem.id.desc()).limit(limit)))


def open_groups(session: Session, limit: int = LIST_LIMIT) -> list[Group]:
    return group_items(open_items(session, limit))
