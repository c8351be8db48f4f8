"""Helpers to run actions the way the action server does: a real tracker, dispatcher and domain."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import common
from dvcbot import settings as settings_mod

ROOT = Path(__file__).resolve().parents[2]


def load_domain() -> dict[str, Any]:
    """The project's domain files merged, as Rasa sends them to the action server."""
    domain: dict[str, Any] = {"responses": {}, "slots": {}, "intents": [], "entities": []}
    for path in sorted((ROOT / "domain").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        domain["responses"].update(data.get("responses") or {})
        domain["slots"].update(data.get("slots") or {})
        domain["intents"] += data.get("intents") or []
        domain["entities"] += data.get("entities") or []
    return domain


def tracker(
    text: str,
    intent: str,
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or []}
    return Tracker(
        sender_id="webchat:test",
        slots=slots or {},
        latest_message=latest,
        events=events or [{"event": "user", "text": text, "parse_data": latest}],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def procedure_entity(value: str) -> list[dict[str, Any]]:
    return [{"entity": "procedure", "value": value, "start": 0, "end": 1}]


async def run(action: Action, trk: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``action``; return (messages sent, events returned)."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, trk, load_domain())
    return dispatcher.messages, list(events)


@contextmanager
def actions_on(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the actions' lazily built engine at ``database_url`` for the duration of the block."""
    monkeypatch.setenv("DVCBOT_DATABASE_URL", database_url)
    settings_mod.get_settings.cache_clear()
    common._sessions.cache_clear()
    try:
        yield
    finally:
        common._sessions().kw["bind"].dispose()
        settings_mod.get_settings.cache_clear()
        common._sessions.cache_clear()
