from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker

from actions.fallback import (
    MAX_SUGGESTIONS,
    TITLE_PREFIX,
    ActionFallback,
    payload,
    previous_turn_was_fallback,
    suggested_intents,
)
from tests.actions.helpers import load_domain, run, tracker


def fallback_tracker(
    ranking: list[tuple[str, float]],
    entities: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Tracker:
    """A tracker whose latest message fell back, with the classifier's ranking under nlu_fallback."""
    latest = {
        "text": "...",
        "intent": {"name": "nlu_fallback", "confidence": 0.3},
        "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.3}]
        + [{"name": name, "confidence": confidence} for name, confidence in ranking],
        "entities": entities or [],
    }
    return Tracker(
        sender_id="webchat:test",
        slots={},
        latest_message=latest,
        events=events or [{"event": "user", "text": "...", "parse_data": latest}],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def test_second_fallback_in_a_row_is_detected() -> None:
    first = [{"event": "user", "text": "abc"}]
    assert not previous_turn_was_fallback(first)
    second = [*first, {"event": "action", "name": "action_fallback"}, {"event": "bot", "text": "?"},
              {"event": "action", "name": "action_listen"}, {"event": "user", "text": "xyz"}]
    assert previous_turn_was_fallback(second)
    understood_between = [*second, {"event": "action", "name": "utter_greet"}, {"event": "user", "text": "q"}]
    assert not previous_turn_was_fallback(understood_between)


async def test_first_fallback_suggests_the_likeliest_intents_and_a_person() -> None:
    domain = load_domain()
    ranking = [("procedure_fee", 0.28), ("greet", 0.25), ("online_payment", 0.2), ("out_of_scope", 0.12),
               ("procedure_documents", 0.11), ("procedure_place", 0.02)]
    msgs, events = await run(ActionFallback(), fallback_tracker(ranking))
    assert events == []
    (msg,) = msgs
    assert msg["response"] == "utter_ask_rephrase_suggestions"
    titles = {r: domain["responses"][TITLE_PREFIX + r][0]["text"] for r in
              ("procedure_fee", "online_payment", "procedure_documents", "human_handoff")}
    assert msg["buttons"] == [
        {"title": titles["procedure_fee"], "payload": "/procedure_fee"},
        {"title": titles["online_payment"], "payload": "/online_payment"},
        {"title": titles["procedure_documents"], "payload": "/procedure_documents"},
        {"title": titles["human_handoff"], "payload": "/human_handoff"},
    ]
    assert titles["human_handoff"] == "Gặp nhân viên"


def test_suggestions_skip_untitled_unlikely_and_handoff_intents() -> None:
    domain = load_domain()
    latest = {"intent_ranking": [
        {"name": "nlu_fallback", "confidence": 0.3},
        {"name": "human_handoff", "confidence": 0.29},
        {"name": "out_of_scope", "confidence": 0.2},
        {"name": "thank", "confidence": 0.15},
        {"name": "dossier_status", "confidence": 0.14},
        {"name": "result_delivery", "confidence": 0.05},
    ]}
    assert suggested_intents(latest, domain) == ["dossier_status"]
    many = {"intent_ranking": [{"name": n, "confidence": 0.15} for n in
                               ("procedure_info", "procedure_steps", "procedure_fee", "procedure_place")]}
    assert len(suggested_intents(many, domain)) == MAX_SUGGESTIONS


async def test_a_flat_ranking_asks_to_rephrase_with_only_the_person_button() -> None:
    flat = [(name, 0.04) for name in ("inform", "greet", "procedure_info", "procedure_fee")]
    msgs, _ = await run(ActionFallback(), fallback_tracker(flat))
    (msg,) = msgs
    assert msg["response"] == "utter_ask_rephrase"
    assert msg["buttons"] == [{"title": "Gặp nhân viên", "payload": "/human_handoff"}]


async def test_suggestions_carry_the_procedure_and_place_named() -> None:
    entities = [{"entity": "procedure", "value": "ho_chieu", "start": 0, "end": 8},
                {"entity": "location", "value": "Phường Hoàng Mai", "start": 12, "end": 20},
                {"entity": "phone_digits", "value": "1234", "start": 21, "end": 25}]
    msgs, _ = await run(ActionFallback(), fallback_tracker([("procedure_place", 0.29)], entities))
    assert msgs[0]["buttons"][0]["payload"] == '/procedure_place{"procedure":"ho_chieu","location":"Phường Hoàng Mai"}'
    assert payload("procedure_fee", {"entities": []}) == "/procedure_fee"


async def test_second_fallback_offers_a_person() -> None:
    msgs, _ = await run(ActionFallback(), tracker("asdfgh", "nlu_fallback"))
    assert msgs[0]["response"] == "utter_ask_rephrase"
    events = [{"event": "user", "text": "asdf"}, {"event": "action", "name": "action_fallback"},
              {"event": "user", "text": "qwer"}]
    msgs, _ = await run(ActionFallback(), tracker("qwer", "nlu_fallback", events=events))
    assert msgs[0]["response"] == "utter_offer_person"


def test_every_button_title_names_a_domain_intent() -> None:
    domain = load_domain()
    titled = [name.removeprefix(TITLE_PREFIX) for name in domain["responses"] if name.startswith(TITLE_PREFIX)]
    assert "human_handoff" in titled
    assert set(titled) <= set(domain["intents"]), set(titled) - set(domain["intents"])
    for name in ("utter_ask_rephrase", "utter_ask_rephrase_suggestions", "utter_offer_person"):
        assert domain["responses"][name][0]["text"]
