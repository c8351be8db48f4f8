from actions.fallback import ActionFallback, previous_turn_was_fallback
from tests.actions.helpers import run, tracker


def test_second_fallback_in_a_row_is_detected() -> None:
    first = [{"event": "user", "text": "abc"}]
    assert not previous_turn_was_fallback(first)
    second = [*first, {"event": "action", "name": "action_fallback"}, {"event": "bot", "text": "?"},
              {"event": "action", "name": "action_listen"}, {"event": "user", "text": "xyz"}]
    assert previous_turn_was_fallback(second)
    understood_between = [*second, {"event": "action", "name": "utter_greet"}, {"event": "user", "text": "q"}]
    assert not previous_turn_was_fallback(understood_between)


async def test_fallback_asks_to_rephrase_then_offers_a_person() -> None:
    msgs, _ = await run(ActionFallback(), tracker("asdfgh", "nlu_fallback"))
    assert msgs[0]["response"] == "utter_ask_rephrase"
    events = [{"event": "user", "text": "asdf"}, {"event": "action", "name": "action_fallback"},
              {"event": "user", "text": "qwer"}]
    msgs, _ = await run(ActionFallback(), tracker("qwer", "nlu_fallback", events=events))
    assert msgs[0]["response"] == "utter_offer_person"
