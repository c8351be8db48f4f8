"""``validate_dossier_form``: reads the dossier code and the four verification digits as citizens type them.

Slots are filled here, not by the NLU pipeline's entities alone (``type: custom`` mappings), so that the form
works whatever the entity extractor finds: the ``dossier_code`` / ``phone_digits`` entities are used when
present, else the message text. A message whose intent is to leave (stop, deny, a person, goodbye) fills
nothing, so the form rejects it and the leaving rules run. Nothing here reveals whether a code exists.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction

from actions.common import db_session, entity_values, latest_intent
from actions.dossiers import limits
from actions.dossiers.codes import LAST4_FULL_NUMBER, extract_code, parse_last4
from actions.dossiers.settings import get_dossier_settings

FORM = "dossier_form"
LEAVE_INTENTS = {"stop", "deny", "human_handoff", "goodbye"}


def _text(tracker: Tracker) -> str:
    text = str(tracker.latest_message.get("text") or "")
    return "" if text.startswith("/") else text  # a button's payload carries no code


def code_in_message(tracker: Tracker) -> str | None:
    """A well-formed dossier code in the latest message: the entity first, then the text."""
    for value in [*entity_values(tracker, "dossier_code"), _text(tracker)]:
        code = extract_code(value)
        if code:
            return code
    return None


class ValidateDossierForm(FormValidationAction):
    """Extract and check ``dossier_code`` and ``phone_last4``; end the form early for a locked-out sender."""

    def name(self) -> str:
        return f"validate_{FORM}"

    async def extract_dossier_code(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        if latest_intent(tracker) in LEAVE_INTENTS:
            return {}
        code = code_in_message(tracker)
        if code:  # also while the digits are asked: typing another code replaces the first one
            return {"dossier_code": code}
        asked = tracker.get_slot("requested_slot")
        if asked == "dossier_code" and _text(tracker).strip():
            return {"dossier_code": _text(tracker)}  # not a code: validate_dossier_code explains the format
        if asked is None and latest_intent(tracker) == "dossier_status" and tracker.get_slot("dossier_code"):
            return {"dossier_code": None}  # a new look-up: a code kept from an earlier try is not assumed
        return {}

    async def extract_phone_last4(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != "phone_last4" or latest_intent(tracker) in LEAVE_INTENTS:
            return {}
        if code_in_message(tracker):
            return {}  # a new code, not digits
        digits = entity_values(tracker, "phone_digits")
        text = digits[0] if digits else _text(tracker)
        return {"phone_last4": text} if text.strip() else {}

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[str]:
        """Nothing to ask from a sender who is locked out: the form ends and ``action_dossier_answer`` says why."""
        with db_session() as session:
            if limits.sender_locked(session, get_dossier_settings(), tracker.sender_id):
                return []
        return domain_slots

    async def validate_dossier_code(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        if value is None:
            return {"dossier_code": None}
        code = extract_code(str(value))
        if code is None:
            dispatcher.utter_message(response="utter_dossier_code_invalid")
        return {"dossier_code": code}

    async def validate_phone_last4(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        digits, reason = parse_last4(str(value or ""))
        if digits is None:
            invalid = "utter_phone_last4_full_number" if reason == LAST4_FULL_NUMBER else "utter_phone_last4_invalid"
            dispatcher.utter_message(response=invalid)
            return {"phone_last4": None}
        return {"phone_last4": digits}
