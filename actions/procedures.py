"""Answers about procedures, from the catalog: documents, steps, fee, duration, place, online filing."""

from __future__ import annotations

import json
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.catalog.models import Procedure
from actions.catalog.queries import clear_winner, get_group, get_procedure, search_procedures
from actions.common import content, db_session, entity_values, format_date, latest_intent, render, utter
from dvcbot.settings import get_settings

INTENT_ASPECT = {
    "procedure_info": "info",
    "procedure_documents": "documents",
    "procedure_steps": "steps",
    "procedure_fee": "fee",
    "procedure_duration": "duration",
    "procedure_place": "place",
    "procedure_online": "online",
}


def _payload(intent: str, procedure_id: str) -> str:
    return f"/{intent}" + json.dumps({"procedure": procedure_id}, separators=(",", ":"))


def _lines(items: list[str], numbered: bool = False) -> str:
    return "\n".join(f"{i}. {item}" if numbered else f"• {item}" for i, item in enumerate(items, 1))


def details(proc: Procedure, aspect: str, parts: dict[str, Any]) -> str | None:
    """The catalog's facts for one aspect, as text; ``None`` when the catalog does not hold them."""
    if aspect == "documents":
        if not proc.documents:
            return None
        items = []
        for doc in proc.documents:
            extra = [parts["document_kinds"][doc["kind"]]] if doc.get("kind") else []
            if doc.get("count"):
                extra.append(parts["count"].format(count=doc["count"]))
            line = doc["name"] + (f" ({', '.join(extra)})" if extra else "")
            if doc.get("form"):
                line += f" – {doc['form']}"
            if doc.get("note"):
                line += f". {doc['note']}"
            items.append(line)
        return _lines(items)
    if aspect == "steps":
        return _lines(proc.steps, numbered=True) if proc.steps else None
    if aspect == "fee":
        lines = [proc.fee_amount] if proc.fee_amount else []
        if proc.fee_exemptions:
            lines.append(parts["fee_exemptions"].format(items="; ".join(proc.fee_exemptions)))
        if proc.fee_online_reduction:
            lines.append(parts["fee_online_reduction"].format(text=proc.fee_online_reduction))
        return "\n".join(lines) if lines else None
    if aspect == "duration":
        return proc.processing_time
    if aspect == "place":
        if not proc.authority_name:
            return None
        return proc.authority_name
    if aspect == "online":
        if not proc.online_level:
            return None
        lines = [parts["online_levels"][proc.online_level]]
        if proc.online_portals:
            names = ", ".join(parts["portals"][p] for p in proc.online_portals)
            lines.append(parts["portals_line"].format(portals=names))
        if proc.online_url:
            lines.append(parts["link_line"].format(url=proc.online_url))
        if proc.agent_can_file:
            lines.append(parts["agent_can_file"])
        return "\n".join(lines)
    # general information: whatever the catalog knows, briefly
    lines = [parts["field"].format(field=proc.field)]
    if proc.code:
        lines.append(parts["code"].format(code=proc.code))
    if proc.authority_name:
        lines.append(proc.authority_name)
    if proc.applicants:
        lines.append(parts["applicants"].format(text=proc.applicants))
    if proc.online_level:
        lines.append(parts["online_levels"][proc.online_level])
    if proc.agent_can_file:
        lines.append(parts["agent_can_file"])
    if proc.delivery_by_post:
        lines.append(parts["delivery_by_post"])
    if proc.notes:
        lines.append(proc.notes)
    return "\n".join(lines)


class ActionAnswerProcedure(Action):
    """Answer the latest ``procedure_*`` question (or a named procedure) from the catalog."""

    def name(self) -> str:
        return "action_answer_procedure"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        intent = latest_intent(tracker)
        aspect = INTENT_ASPECT.get(intent, "info")
        ask_intent = intent if intent in INTENT_ASPECT else "procedure_info"
        portal = get_settings().official_portal_url
        mentions = entity_values(tracker, "procedure")
        with db_session() as session:
            proc: Procedure | None = None
            for mention in mentions:
                group = get_group(session, mention)
                if group is not None:
                    buttons = []
                    for choice in group.choices:
                        option = get_procedure(session, choice)
                        if option is not None:
                            buttons.append({"title": option.name, "payload": _payload(ask_intent, option.id)})
                    dispatcher.utter_message(text=group.question, buttons=buttons)
                    return [SlotSet("procedure", None)]
                proc = get_procedure(session, mention)
                if proc is not None:
                    break
            if proc is None and not mentions and tracker.get_slot("procedure"):
                proc = get_procedure(session, str(tracker.get_slot("procedure")))
            text = str(tracker.latest_message.get("text") or "")
            matches = [] if proc is not None or text.startswith("/") else search_procedures(session, text)
            winner = clear_winner(matches)
            if winner is not None:
                proc = get_procedure(session, winner.procedure_id)
            if proc is None:
                if matches:
                    text, _ = render(domain, "utter_procedure_suggestions")
                    buttons = [{"title": m.name, "payload": _payload(ask_intent, m.procedure_id)} for m in matches]
                    utter(dispatcher, text, buttons)
                elif mentions or len(text.split()) > 3:
                    utter(dispatcher, *render(domain, "utter_procedure_not_found", portal_url=portal))
                else:
                    utter(dispatcher, *render(domain, "utter_ask_which_procedure"))
                return []
            parts = content("answer_parts")
            facts = details(proc, aspect, parts)
            if facts is None:
                text, buttons = render(
                    domain, "utter_procedure_unknown_value", aspect=parts["aspects"][aspect],
                    procedure_name=proc.name.lower(), portal_url=proc.online_url or portal,
                )
                utter(dispatcher, text, buttons)
                return [SlotSet("procedure", proc.id)]
            footer = parts["footer"].format(
                source=proc.sources[0], verified_on=format_date(proc.verified_on),
                portal_url=proc.online_url or portal,
            )
            name = proc.name if aspect == "info" else proc.name[0].lower() + proc.name[1:]
            text, buttons = render(
                domain, f"utter_procedure_{aspect}", procedure_name=name, details=facts, footer=footer
            )
            utter(dispatcher, text, buttons)
            return [SlotSet("procedure", proc.id)]
