"""validate_dossier_form and leaving the form: codes and digits as typed, nothing echoed, a way out."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from actions.dossiers.actions import ActionDossierStop
from tests.actions.dossiers.conftest import CODE
from tests.actions.dossiers.helpers import FORM, replies, run, turn

Sessions = sessionmaker[Session]
ASK_CODE = {"requested_slot": "dossier_code"}
ASK_DIGITS = {"requested_slot": "phone_last4", "dossier_code": CODE}


async def test_a_code_typed_loosely_is_stored_canonically(sessions: Sessions) -> None:
    messages, slots = await run(FORM, turn("ma ho so la ooo.00.04.h51 200221 0001 a", slots=ASK_CODE))
    assert messages == [] and slots == {"dossier_code": CODE}


async def test_the_extractors_entity_is_used_when_present(sessions: Sessions) -> None:
    entity = [{"entity": "dossier_code", "value": CODE, "start": 0, "end": 5}]
    _, slots = await run(FORM, turn("mã đây ạ", slots=ASK_CODE, entities=entity))
    assert slots == {"dossier_code": CODE}


async def test_a_wrong_code_explains_the_format_and_where_it_is_printed(sessions: Sessions) -> None:
    messages, slots = await run(FORM, turn("hồ sơ khai sinh của con tôi", slots=ASK_CODE))
    assert replies(messages) == ["utter_dossier_code_invalid"]
    assert slots == {"dossier_code": None}


async def test_the_code_in_the_first_message_is_used(sessions: Sessions) -> None:
    # at activation nothing has been asked yet; Rasa passes the message that started the form
    _, slots = await run(FORM, turn(f"hồ sơ {CODE} xong chưa", intent="dossier_status", slots={}))
    assert slots == {"dossier_code": CODE}
    _, slots = await run(FORM, turn("/dossier_status", intent="dossier_status", slots={}))
    assert slots == {}


async def test_a_new_look_up_does_not_assume_a_code_kept_from_an_earlier_try(sessions: Sessions) -> None:
    kept = {"dossier_code": CODE}
    messages, slots = await run(FORM, turn("tra cứu hồ sơ", intent="dossier_status", slots=kept))
    assert messages == [] and slots == {"dossier_code": None}
    # but going back into the form after failed digits keeps it (the latest message is those digits)
    _, slots = await run(FORM, turn("9999", intent="inform", slots=kept))
    assert slots == {}


@pytest.mark.parametrize("intent", ["stop", "deny", "human_handoff", "goodbye"])
async def test_leaving_intents_fill_nothing_so_the_form_lets_go(sessions: Sessions, intent: str) -> None:
    for asked in (ASK_CODE, ASK_DIGITS):
        messages, slots = await run(FORM, turn("thôi dừng", intent=intent, slots=asked))
        assert messages == [] and slots == {}


@pytest.mark.parametrize(("typed", "expected"), [("4567", "4567"), ("45 67", "4567"), ("số cuối 4567 ạ", "4567")])
async def test_digits_are_read(sessions: Sessions, typed: str, expected: str) -> None:
    messages, slots = await run(FORM, turn(typed, slots=ASK_DIGITS))
    assert messages == [] and slots == {"phone_last4": expected}


async def test_a_whole_phone_number_is_refused_and_never_echoed(sessions: Sessions) -> None:
    messages, slots = await run(FORM, turn("0901234567", slots=ASK_DIGITS))
    assert replies(messages) == ["utter_phone_last4_full_number"]
    assert slots == {"phone_last4": None}
    assert "0901234567" not in repr(messages)


async def test_other_text_asks_for_four_digits_again(sessions: Sessions) -> None:
    messages, slots = await run(FORM, turn("không nhớ số", slots=ASK_DIGITS))
    assert replies(messages) == ["utter_phone_last4_invalid"] and slots == {"phone_last4": None}


async def test_a_new_code_at_the_digits_prompt_replaces_the_old_one(sessions: Sessions) -> None:
    other = "000.00.12.H26-261109-0034"
    messages, slots = await run(FORM, turn(f"à nhầm, mã đúng là {other}", slots=ASK_DIGITS))
    assert messages == [] and slots == {"dossier_code": other}


@pytest.mark.parametrize(("intent", "said"), [("stop", ["utter_dossier_form_stopped"]), ("deny", [
    "utter_dossier_form_stopped"]), ("human_handoff", []), ("goodbye", [])])
async def test_leaving_forgets_what_was_typed(intent: str, said: list[str]) -> None:
    messages, slots = await run(ActionDossierStop(), turn("dừng", intent=intent, slots=ASK_DIGITS))
    assert replies(messages) == said
    assert slots == {"requested_slot": None, "dossier_code": None, "phone_last4": None, "dossier_outcome": None}


def test_every_response_the_dossier_actions_use_is_in_the_domain() -> None:
    import re

    from tests.actions.dossiers.helpers import domain
    from tests.actions.helpers import ROOT

    used: set[str] = set()
    for path in (ROOT / "actions" / "dossiers").glob("*.py"):
        used |= set(re.findall(r'"(utter_[a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    responses: dict[str, Any] = domain()["responses"]
    assert used and used <= set(responses), used - set(responses)
    for name in ("utter_ask_dossier_code", "utter_ask_phone_last4"):
        assert name in responses
