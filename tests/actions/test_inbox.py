"""The editors' inbox in the action server: what action_fallback and action_note_message record (masked, once per
message, never breaking the answer), and how the inbox groups similar messages."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actions.editor import inbox
from actions.editor.inbox_action import ActionNoteMessage
from actions.editor.models import InboxItem
from actions.fallback import ActionFallback
from tests.actions.helpers import actions_on, run

SENDER = "telegram:4242"


def message(text: str, intent: str, confidence: float, message_id: str | None = "m1",
            ranking: list[tuple[str, float]] | None = None,
            entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    ranked = ranking if ranking is not None else [(intent, confidence)]
    return {"text": text, "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": [{"name": n, "confidence": c} for n, c in ranked],
            "entities": entities or [], "message_id": message_id, "metadata": {"channel": "telegram"}}


def tracker_for(latest: dict[str, Any], active_loop: dict[str, Any] | None = None) -> Tracker:
    return Tracker(sender_id=SENDER, slots={}, latest_message=latest,
                   events=[{"event": "user", "text": latest["text"], "parse_data": latest}], paused=False,
                   followup_action=None, active_loop=active_loop or {}, latest_action_name="action_listen")


def rows(engine: Engine) -> list[InboxItem]:
    with Session(engine) as session:
        return list(session.scalars(select(InboxItem).order_by(InboxItem.id)))


async def test_action_fallback_records_the_message_masked_with_its_ranking(
        engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    latest = message("e can lam cccd so 001099012345 sdt 0912 345 678 thi sao", "nlu_fallback", 0.3,
                     ranking=[("nlu_fallback", 0.3), ("procedure_info", 0.22), ("procedure_documents", 0.18)],
                     entities=[{"entity": "procedure", "value": "can_cuoc", "start": 8, "end": 15},
                               {"entity": "phone_digits", "value": "5678", "start": 0, "end": 4}])
    with actions_on(database_url, monkeypatch):
        sent, _ = await run(ActionFallback(), tracker_for(latest))
        await run(ActionFallback(), tracker_for(latest))  # a retried action
    assert sent and sent[0]["response"] in ("utter_ask_rephrase_suggestions", "utter_ask_rephrase")
    [item] = rows(engine)
    assert item.text == "e can lam cccd so *********345 sdt **** *** 678 thi sao"
    assert "001099012345" not in item.normalized and "can cuoc cong dan" in item.normalized
    assert (item.reason, item.intent, item.confidence) == ("fallback", "procedure_info", 0.22)
    assert [r["name"] for r in item.ranking] == ["procedure_info", "procedure_documents"]
    assert item.entities == [{"entity": "procedure", "value": "can_cuoc", "start": 8, "end": 15}]
    assert item.channel == "telegram" and item.message_id == "m1" and item.state == "open"
    assert item.sender_hash == inbox.sender_hash(SENDER) and "4242" not in item.sender_hash


async def test_low_confidence_is_noted_whatever_answers_it(
        engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with actions_on(database_url, monkeypatch):
        action = ActionNoteMessage()
        sent, events = await run(action, tracker_for(message("alo ad oi", "greet", 0.45, "a")))
        assert sent == [] and events == []  # the conversation is not touched
        await run(action, tracker_for(message("xin chào", "greet", 0.97, "b")))
        await run(action, tracker_for(message("khong hieu gi", "nlu_fallback", 0.3, "c")))  # action_fallback's
        await run(action, tracker_for(message("abc", "inform", 0.4, "d"), {"name": "dossier_form"}))
        await run(action, tracker_for(message("1234", "inform", 0.2, "e")))  # verification digits
        await run(action, tracker_for(message("/greet", "greet", 0.1, "f")))  # a button
        # the same message later falls back in the policy (core fallback): one row, now a fallback
        await run(action, tracker_for(message("cho hoi cai nay", "procedure_info", 0.5, "g")))
        await run(ActionFallback(), tracker_for(message("cho hoi cai nay", "procedure_info", 0.5, "g")))
    items = rows(engine)
    assert [(i.text, i.reason, i.intent) for i in items] == [
        ("alo ad oi", "low_confidence", "greet"), ("cho hoi cai nay", "fallback", "procedure_info")]
    monkeypatch.setenv("DVCBOT_INBOX_LOW_CONFIDENCE", "0.4")
    with actions_on(database_url, monkeypatch):
        await run(ActionNoteMessage(), tracker_for(message("alo alo", "greet", 0.45, "h")))
    assert len(rows(engine)) == 2


async def test_a_broken_database_never_breaks_the_answer(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with actions_on(f"sqlite:///{tmp_path / 'no-tables.db'}", monkeypatch):
        sent, _ = await run(ActionFallback(), tracker_for(message("xyz 0912345678", "nlu_fallback", 0.3)))
        assert sent and sent[0]["response"] == "utter_ask_rephrase"
        await run(ActionNoteMessage(), tracker_for(message("abc", "greet", 0.4, "z")))
    assert "could not store" in caplog.text and "0912345678" not in caplog.text


def test_store_ignores_a_message_recorded_concurrently(engine: Engine) -> None:
    item = inbox.new_item(SENDER, message("alo", "greet", 0.4, "same"), "low_confidence", {})
    twin = inbox.new_item(SENDER, message("alo", "greet", 0.4, "same"), "low_confidence", {})
    assert item is not None and twin is not None
    with Session(engine) as session:
        assert inbox.store(session, item)
    with Session(engine) as session:
        session.add(twin)  # as if the existence check had run before the other insert
        with pytest.raises(IntegrityError):  # the unique constraint is what protects
            session.commit()
    with Session(engine) as session:
        assert not inbox.store(session, inbox.new_item(SENDER, message("alo", "greet", 0.4, "same"),
                                                       "low_confidence", {}))  # type: ignore[arg-type]
    assert len(rows(engine)) == 1


def _item(id_: int, text_: str, intent: str) -> InboxItem:
    return InboxItem(id=id_, text=text_, normalized=inbox.grouping_key(text_, ABBREVIATIONS), intent=intent,
                     reason="fallback", sender_hash="x", state="open")


ABBREVIATIONS = {"ko": "không", "dc": "được", "ad": "admin"}


def test_grouping_puts_similar_messages_together() -> None:
    items = [
        _item(1, "Alo ad ơi", "greet"),
        _item(2, "alo ad oi!!", "greet"),
        _item(3, "làm hộ chiếu mất bao lâu", "procedure_duration"),
        _item(4, "lam ho chieu mat bao lau vay", "procedure_duration"),
        _item(5, "ho chieu lam mat bao lau a", "procedure_info"),
        _item(6, "trời hôm nay mưa to quá", "out_of_scope"),
        _item(7, "alo ad ơi có ai ko", "greet"),
    ]
    groups = inbox.group_items(items)
    assert [sorted(i.id for i in g.items) for g in groups] == [[1, 2, 7], [3, 4, 5], [6]]
    assert groups[1].intents == [("procedure_duration", 2), ("procedure_info", 1)]
    assert groups[1].top_intent == "procedure_duration" and groups[0].fallbacks == 3


def test_similarity_forgives_accents_case_teencode_and_typos() -> None:
    def sim(a: str, b: str) -> float:
        return inbox.similarity(inbox.features(inbox.grouping_key(a, ABBREVIATIONS)),
                                inbox.features(inbox.grouping_key(b, ABBREVIATIONS)))

    assert sim("Không được à", "ko dc a") == 1.0
    assert sim("đăng ký khai sinh", "dang ki khai sinhh") > 0.6
    assert sim("đăng ký khai sinh", "trời mưa to quá") < 0.3
