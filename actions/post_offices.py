"""Where is the nearest post office: by a shared location, or by ward / old district name."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.catalog.directory import Nearby, in_place, nearest
from actions.common import content, db_session, entity_values, render, utter


def shared_location(tracker: Tracker) -> tuple[float, float] | None:
    """The location a channel attached to the latest message (``metadata.location``), if any."""
    metadata = tracker.latest_message.get("metadata") or {}
    loc = metadata.get("location") if isinstance(metadata, dict) else None
    if not isinstance(loc, dict):
        return None
    try:
        lat, lon = float(loc["lat"]), float(loc["lon"])
    except (KeyError, TypeError, ValueError):
        return None
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


def describe(item: Nearby, parts: dict[str, Any]) -> str:
    office = item.office
    lines = [office.name, office.address]
    if item.km is not None:
        lines[0] += " – " + parts["distance"].format(km=f"{item.km:.1f}".replace(".", ","))
    if office.opening_hours:
        lines.append(parts["opening_hours"].format(text=office.opening_hours))
    if office.phone:
        lines.append(parts["phone"].format(text=office.phone))
    if office.verified and office.agent_service:
        lines.append(parts["agent_confirmed"])
    elif not office.verified:
        lines.append(parts["unverified"])
    return "\n".join(lines)


class ActionFindPostOffice(Action):
    def name(self) -> str:
        return "action_find_post_office"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        parts = content("answer_parts")["post_office"]
        location = shared_location(tracker)
        places = entity_values(tracker, "location")
        text = str(tracker.latest_message.get("text") or "")
        with db_session() as session:
            if location:
                found, response = nearest(session, *location), "utter_post_offices_nearest"
            else:
                found = []
                for place in [*places, text]:
                    found = in_place(session, place)
                    if found:
                        break
                response = "utter_post_offices_in_place"
            if not found:
                key = "utter_post_office_ask_place" if not places else "utter_post_office_none_in_place"
                utter(dispatcher, *render(domain, key, place=places[0] if places else ""))
                return []
            listing = "\n\n".join(f"{i}. {describe(item, parts)}" for i, item in enumerate(found, 1))
            utter(dispatcher, *render(domain, response, listing=listing))
        return []
