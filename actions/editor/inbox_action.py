"""``action_note_message``: puts low-confidence messages in the editors' inbox, whatever then answers them.

Rasa runs it after every user message, before the policies predict, because the slot ``inbox_note`` in
``domain/core.yml`` has a custom mapping naming it (``action_extract_slots`` calls the actions of custom
mappings). It never sets that slot nor sends anything, so conversations and stories are unchanged; when the
action server is down Rasa logs a warning and goes on.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import db_session
from actions.editor import inbox
from dvcbot.settings import get_settings

NAME = "action_note_message"


def is_low_confidence(message: dict[str, Any], threshold: float) -> bool:
    """A real intent predicted below ``threshold`` (``nlu_fallback`` is ``action_fallback``'s to record)."""
    intent = message.get("intent") or {}
    name = intent.get("name")
    if not name or name == inbox.FALLBACK_INTENT:
        return False
    return float(intent.get("confidence") or 0.0) < threshold


def note(tracker: Tracker, reason: str) -> bool:
    """Record the tracker's latest message with ``reason``; never raises."""
    settings = get_settings()
    abbreviations = inbox.abbreviations_at(settings.editor_data_dir / "lexicon" / "abbreviations.yml")
    return inbox.record(db_session, tracker.sender_id, tracker.latest_message, reason, abbreviations)


class ActionNoteMessage(Action):
    def name(self) -> str:
        return NAME

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        # answers to a form (a dossier code, verification digits) are not questions to label
        if not tracker.active_loop.get("name") and is_low_confidence(
                tracker.latest_message, get_settings().inbox_low_confidence):
            note(tracker, "low_confidence")
        return []
