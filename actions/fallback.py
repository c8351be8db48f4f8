"""Low-confidence turns: offer the likeliest intents as buttons; on the second in a row, offer a person.

Button titles are content, not code: the response ``utter_suggest_<intent>`` in the domain gives the title of
the button for ``<intent>``, and an intent without such a response is never suggested (greetings, thanks,
``out_of_scope``...). ``utter_suggest_human_handoff`` titles the button that is always there.

Every message it answers goes to the editors' inbox (:mod:`actions.editor.inbox`) with reason ``fallback``.
"""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.editor.inbox_action import note

NAME = "action_fallback"
FALLBACK_INTENT = "nlu_fallback"
HANDOFF_INTENT = "human_handoff"
TITLE_PREFIX = "utter_suggest_"
MAX_SUGGESTIONS = 3
# A suggestion must stand out from a flat ranking (about 0.04 for 25 intents), which is what the
# classifier gives for text it knows nothing of.
MIN_SUGGESTION_CONFIDENCE = 0.1
# Entities a suggestion carries over, so that the chosen answer is about what the citizen named.
CARRIED_ENTITIES = ("procedure", "location")


def previous_turn_was_fallback(events: list[dict[str, Any]]) -> bool:
    """Whether the bot also fell back on the citizen's previous message."""
    users_seen = 0
    for event in reversed(events):
        if event.get("event") == "user":
            users_seen += 1
            if users_seen == 2:
                return False
        elif users_seen == 1 and event.get("event") == "action" and event.get("name") == NAME:
            return True
    return False


def response_text(domain: dict[str, Any], name: str) -> str | None:
    """The text of the first variant of response ``name``, if the domain has one."""
    variants = (domain.get("responses") or {}).get(name) or []
    for variant in variants:
        text = variant.get("text") if isinstance(variant, dict) else None
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


def suggested_intents(latest_message: dict[str, Any], domain: dict[str, Any]) -> list[str]:
    """Up to three intents from the message's ranking that have a button title, likeliest first."""
    chosen: list[str] = []
    for entry in latest_message.get("intent_ranking") or []:
        name = str(entry.get("name") or "")
        confidence = float(entry.get("confidence") or 0.0)
        if name in (FALLBACK_INTENT, HANDOFF_INTENT) or name in chosen or confidence < MIN_SUGGESTION_CONFIDENCE:
            continue
        if response_text(domain, TITLE_PREFIX + name) is None:
            continue
        chosen.append(name)
        if len(chosen) == MAX_SUGGESTIONS:
            break
    return chosen


def payload(intent: str, latest_message: dict[str, Any]) -> str:
    """``/<intent>`` with the message's procedure and place: ``/procedure_fee{"procedure":"ho_chieu"}``."""
    carried: dict[str, str] = {}
    for entity in latest_message.get("entities") or []:
        kind, value = entity.get("entity"), entity.get("value")
        if kind in CARRIED_ENTITIES and isinstance(value, str) and kind not in carried:
            carried[kind] = value
    if not carried:
        return f"/{intent}"
    return f"/{intent}" + json.dumps(carried, ensure_ascii=False, separators=(",", ":"))


def suggestion_buttons(
    intents: list[str], latest_message: dict[str, Any], domain: dict[str, Any]
) -> list[dict[str, str]]:
    """Buttons for ``intents``, then the one that asks for a person."""
    buttons = [
        {"title": str(response_text(domain, TITLE_PREFIX + intent)), "payload": payload(intent, latest_message)}
        for intent in intents
    ]
    handoff_title = response_text(domain, TITLE_PREFIX + HANDOFF_INTENT)
    if handoff_title:
        buttons.append({"title": handoff_title, "payload": f"/{HANDOFF_INTENT}"})
    return buttons


class ActionFallback(Action):
    def name(self) -> str:
        return NAME

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        note(tracker, "fallback")
        if previous_turn_was_fallback(tracker.events):
            dispatcher.utter_message(response="utter_offer_person")
            return []
        intents = suggested_intents(tracker.latest_message, domain)
        response = "utter_ask_rephrase_suggestions" if intents else "utter_ask_rephrase"
        dispatcher.utter_message(response=response, buttons=suggestion_buttons(intents, tracker.latest_message, domain))
        return []
