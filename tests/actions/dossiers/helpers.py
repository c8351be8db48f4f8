"""Run the dossier actions the way the action server does, one citizen turn at a time."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.dossiers.actions import ActionDossierAnswer
from actions.dossiers.forms import ValidateDossierForm
from tests.actions.helpers import ROOT, load_domain

FORM = ValidateDossierForm()
ANSWER = ActionDossierAnswer()


@cache
def domain() -> dict[str, Any]:
    """The merged domain with its forms too, as Rasa sends it to the action server."""
    merged = load_domain()
    merged["forms"] = {}
    for path in sorted((ROOT / "domain").glob("*.yml")):
        merged["forms"].update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("forms") or {})
    return merged


def turn(text: str, intent: str = "inform", slots: dict[str, Any] | None = None, sender: str = "webchat:alice",
         entities: list[dict[str, Any]] | None = None, form_active: bool = True) -> Tracker:
    """The tracker as an action sees it right after the citizen said ``text``."""
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or []}
    return Tracker(
        sender_id=sender, slots=dict(slots or {}), latest_message=latest,
        events=[{"event": "user", "text": text, "parse_data": latest}], paused=False, followup_action=None,
        active_loop={"name": "dossier_form"} if form_active else {}, latest_action_name="action_listen",
    )


async def run(action: Action, trk: Tracker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``action``; return the messages it sent and the slots it set."""
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, trk, domain())
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def replies(messages: list[dict[str, Any]]) -> list[str]:
    """What the citizen sees of each message: the response name, or the rendered text."""
    return [m.get("response") or m.get("text") or "" for m in messages]


async def look_up(code_text: str, digits_text: str, sender: str = "webchat:alice",
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One whole look-up: the code, the digits, then the answer once the form is done."""
    slots: dict[str, Any] = {"requested_slot": "dossier_code"}
    shown: list[dict[str, Any]] = []
    for text, asked in ((code_text, "dossier_code"), (digits_text, "phone_last4")):
        slots["requested_slot"] = asked
        messages, changed = await run(FORM, turn(text, slots=slots, sender=sender))
        shown += messages
        slots.update(changed)
        if "requested_slot" in changed and changed["requested_slot"] is None:
            break  # the form ended early (locked out)
        if asked == "dossier_code" and not slots.get("dossier_code"):
            return shown, slots
    messages, changed = await run(ANSWER, turn(digits_text, slots=slots, sender=sender, form_active=False))
    return shown + messages, changed
