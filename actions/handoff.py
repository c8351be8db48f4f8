"""Asking for a person: the action tells the gateway to hand the conversation to postal staff.

It sends no text of its own. Its custom payload ``{"handoff": {"reason", "procedure", "procedure_name"}}``
reaches the gateway through the REST channel; the gateway opens the ticket, tells the citizen their place in the
queue and from then on relays the conversation to staff (Rasa is not paused, so the slots are still there when
the bot takes over again).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.catalog.queries import get_procedure
from actions.common import db_session, latest_intent

REASONS = {"human_handoff": "human_handoff", "complaint": "complaint", "nlu_fallback": "fallback"}


def handoff_request(tracker: Tracker) -> dict[str, Any]:
    """The request the gateway reads: why, and the procedure under discussion (id and name), if any."""
    reason = REASONS.get(latest_intent(tracker), "human_handoff")
    procedure = tracker.get_slot("procedure")
    name = None
    if isinstance(procedure, str) and procedure:
        with db_session() as session:
            proc = get_procedure(session, procedure)
            name = proc.name if proc is not None else None
    return {"reason": reason, "procedure": procedure or None, "procedure_name": name}


class ActionRequestHandoff(Action):
    """Hand the conversation to postal staff (``human_handoff``, ``complaint``)."""

    def name(self) -> str:
        return "action_request_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(json_message={"handoff": handoff_request(tracker)})
        return []
