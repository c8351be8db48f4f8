"""Low-confidence turns: ask the citizen to rephrase; on the second in a row, offer a person."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

NAME = "action_fallback"


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


class ActionFallback(Action):
    def name(self) -> str:
        return NAME

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if previous_turn_was_fallback(tracker.events):
            dispatcher.utter_message(response="utter_offer_person")
        else:
            dispatcher.utter_message(response="utter_ask_rephrase")
        return []
