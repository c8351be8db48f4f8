"""What every action needs: the database session, content read from ``data/content``, reply rendering."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Tracker
from sqlalchemy.orm import Session, sessionmaker

from dvcbot.db import make_engine, session_factory
from dvcbot.settings import get_settings

MAX_CHARS = 1200


@lru_cache(maxsize=1)
def _sessions() -> sessionmaker[Session]:
    return session_factory(make_engine(get_settings().database_url))


def db_session() -> Session:
    """A new session on the configured database (the engine is built on first use, not at import)."""
    return _sessions()()


@lru_cache(maxsize=8)
def content(name: str) -> dict[str, Any]:
    """A YAML file of ``data/content`` (read once per process)."""
    path: Path = get_settings().content_dir / f"{name}.yml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def latest_intent(tracker: Tracker) -> str:
    return str((tracker.latest_message.get("intent") or {}).get("name") or "")


def entity_values(tracker: Tracker, entity: str) -> list[str]:
    """Values of ``entity`` in the latest message, in order, without repeats."""
    seen: list[str] = []
    for ent in tracker.latest_message.get("entities") or []:
        value = ent.get("value")
        if ent.get("entity") == entity and isinstance(value, str) and value not in seen:
            seen.append(value)
    return seen


def format_date(value: dt.date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else ""


def split_text(text: str, limit: int = MAX_CHARS) -> list[str]:
    """Split a long answer on line breaks (or spaces) into parts of at most ``limit`` characters."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts


def render(domain: dict[str, Any], response: str, **values: Any) -> tuple[str, list[dict[str, str]]]:
    """Fill a domain response's first variation with ``values``; returns its text and buttons."""
    variations = (domain.get("responses") or {}).get(response) or [{}]
    first = variations[0]
    text = str(first.get("text", "")).format(**values)
    # payloads are filled like Rasa fills them, so doubled braces become single ones
    buttons = [{"title": str(b["title"]), "payload": str(b["payload"]).format(**values)}
               for b in first.get("buttons") or []]
    return text, buttons


def utter(dispatcher: Any, text: str, buttons: list[dict[str, str]] | None = None) -> None:
    """Send ``text``, split into parts of at most ``MAX_CHARS``; buttons go with the last part."""
    parts = split_text(text)
    for part in parts[:-1]:
        dispatcher.utter_message(text=part)
    dispatcher.utter_message(text=parts[-1], buttons=buttons or [])
