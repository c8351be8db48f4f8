"""Answers about the post-office service itself (agent help, online payment, delivery), kept as content."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.common import content, format_date, latest_intent, render, utter
from dvcbot.settings import get_settings


class ActionServiceAnswer(Action):
    """Answer ``agent_service_info``, ``online_payment`` and ``result_delivery`` from ``services.yml``."""

    def name(self) -> str:
        return "action_service_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = latest_intent(tracker)
        answer = (content("services").get("answers") or {}).get(intent)
        portal = get_settings().official_portal_url
        if not isinstance(answer, dict) or not answer.get("text"):
            dispatcher.utter_message(response="utter_service_unknown", portal_url=portal)
            return []
        sources = answer.get("sources") or []
        verified = answer.get("verified_on")
        footer = content("answer_parts")["footer"].format(
            source=sources[0] if sources else portal,
            verified_on=format_date(verified) if hasattr(verified, "strftime") else str(verified or ""),
            portal_url=portal,
        )
        text, buttons = render(domain, "utter_service_answer", details=str(answer["text"]).strip(), footer=footer)
        utter(dispatcher, text, buttons)
        return []
