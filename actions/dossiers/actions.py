"""The dossier actions: answer a completed look-up, leave the form, follow and unfollow a dossier."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import db_session, latest_intent, render, utter
from actions.dossiers import audit, limits, notify, register, texts
from actions.dossiers.lookup import default_source, verified_lookup
from actions.dossiers.settings import get_dossier_settings
from dvcbot import logmask

logmask.install()  # the action server logs requests; personal numbers in them are masked

OUTCOME_RESPONSES = {
    "failed": "utter_dossier_not_matched",
    "locked": "utter_dossier_locked",
    "unavailable": "utter_dossier_source_down",
}


def _forget(outcome: str | None, keep_code: bool = False) -> list[EventType]:
    """Clear what the citizen typed (the code stays only for another try at the digits) and note the outcome."""
    events: list[EventType] = [SlotSet("phone_last4", None), SlotSet("dossier_outcome", outcome)]
    return events if keep_code else [SlotSet("dossier_code", None), *events]


class ActionDossierAnswer(Action):
    """Verify the code and digits the form collected, then answer, refuse or explain, always the same way
    for a wrong code and wrong digits."""

    def name(self) -> str:
        return "action_dossier_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        settings = get_dossier_settings()
        code, digits = tracker.get_slot("dossier_code"), tracker.get_slot("phone_last4")
        sender = tracker.sender_id
        if not code or not digits:  # the form ended early: the sender is locked out
            with db_session() as session:
                is_locked = limits.locked(session, settings, sender, code)
                if is_locked:
                    audit.record(session, sender, code, "locked")
                    session.commit()
            dispatcher.utter_message(response="utter_dossier_locked" if is_locked else "utter_dossier_retry")
            return _forget("locked" if is_locked else None)
        result = await verified_lookup(default_source(), db_session, settings, sender, str(code), str(digits))
        if result.view is None or result.outcome != "verified":
            dispatcher.utter_message(response=OUTCOME_RESPONSES[result.outcome])
            return _forget(result.outcome, keep_code=result.outcome == "failed")
        view = result.view
        text, buttons = render(domain, "utter_dossier_answer", details=texts.details(view, texts.parts()),
                               procedure_name=texts.procedure_phrase(view.procedure_name))
        utter(dispatcher, text, buttons)
        return [SlotSet("dossier_verified", view.code), *_forget("verified")]


class ActionDossierStop(Action):
    """Leave the look-up form and forget what was typed in it."""

    def name(self) -> str:
        return "action_dossier_stop"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if latest_intent(tracker) in ("stop", "deny"):  # other ways out (a person, goodbye) answer for themselves
            dispatcher.utter_message(response="utter_dossier_form_stopped")
        return [ActiveLoop(None), SlotSet("requested_slot", None), *_forget(None)]


class ActionDossierSubscribe(Action):
    """Tell the citizen when the dossier they just looked up changes."""

    def name(self) -> str:
        return "action_dossier_subscribe"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        settings = get_dossier_settings()
        code = tracker.get_slot("dossier_verified")
        with db_session() as session:
            # the audit, not the slot alone, proves this conversation verified the dossier
            if not code or not audit.verified_recently(session, tracker.sender_id, str(code),
                                                       settings.verified_minutes):
                dispatcher.utter_message(response="utter_dossier_subscribe_needs_lookup")
                return [SlotSet("dossier_verified", None)]
            dossier = register.find(session, str(code))
            if dossier is None:
                dispatcher.utter_message(response="utter_dossier_subscribe_unsupported")
                return []
            notify.subscribe(session, dossier.id, tracker.sender_id)
        dispatcher.utter_message(response="utter_dossier_subscribed")
        return []


class ActionDossierUnsubscribe(Action):
    """Stop every dossier notification for this conversation."""

    def name(self) -> str:
        return "action_dossier_unsubscribe"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        with db_session() as session:
            cancelled = notify.cancel(session, tracker.sender_id)
        response = "utter_dossier_unsubscribed" if cancelled else "utter_dossier_no_subscription"
        dispatcher.utter_message(response=response)
        return []
