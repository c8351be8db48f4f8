"""The verified look-up through the real form validation and answer actions (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from actions.dossiers import lookup
from actions.dossiers.models import LookupAudit, VerificationFailure
from actions.dossiers.sources import DossierView, SourceUnavailable
from tests.actions.dossiers.conftest import CODE, OTHER, UNKNOWN
from tests.actions.dossiers.helpers import ANSWER, FORM, look_up, replies, run, turn

Sessions = sessionmaker[Session]


async def test_happy_path_shows_status_procedure_dates_and_shipment(sessions: Sessions) -> None:
    messages, slots = await look_up("mã hồ sơ 000.00.04.h51 - 200221 - 0001", "4567")
    (answer,) = messages
    assert answer["text"].startswith("Dạ, em đã xác minh xong. Tình trạng hồ sơ đăng ký khai sinh của anh/chị:")
    for line in (f"• Mã hồ sơ: {CODE}", "• Ngày tiếp nhận: 02/11/2026",
                 "• Tình trạng: Kết quả đã được gửi qua bưu điện", "• Ngày hẹn trả kết quả: 03/11/2026",
                 "• Mã bưu gửi: EI261118012VN (đang vận chuyển)"):
        assert line in answer["text"]
    assert [b["payload"] for b in answer["buttons"]] == ["/dossier_subscribe", "/dossier_status", "/human_handoff"]
    assert slots == {"dossier_verified": CODE, "dossier_code": None, "phone_last4": None,
                     "dossier_outcome": "verified"}
    with sessions() as session:
        (row,) = session.scalars(select(LookupAudit)).all()
        assert (row.sender, row.code, row.outcome) == ("webchat:alice", CODE, "verified")
        assert row.dossier_id is not None


async def test_missing_documents_are_named(sessions: Sessions) -> None:
    messages, _ = await look_up(OTHER, "0111")
    assert "• Tình trạng: Cần bổ sung giấy tờ" in messages[0]["text"]
    assert "• Giấy tờ cần bổ sung: Bản sao hợp đồng thuê nhà có công chứng" in messages[0]["text"]


async def test_wrong_code_and_wrong_digits_are_indistinguishable(
        sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("actions.dossiers.lookup.get_dossier_settings", lambda: _settings(min_answer_seconds=0.3))
    monkeypatch.setattr("actions.dossiers.actions.get_dossier_settings", lambda: _settings(min_answer_seconds=0.3))
    outcomes = []
    for sender, code, digits in (("webchat:a", UNKNOWN, "4567"), ("webchat:b", CODE, "9999"),
                                 ("webchat:c", UNKNOWN, "9999"), ("webchat:d", CODE, "4567")):
        started = time.monotonic()
        messages, slots = await look_up(code, digits, sender=sender)
        outcomes.append((messages, slots, time.monotonic() - started))
    wrong_code, wrong_digits, both_wrong, right = outcomes
    assert wrong_code[0] == wrong_digits[0] == both_wrong[0]
    assert replies(wrong_code[0]) == ["utter_dossier_not_matched"]
    # the typed code is kept (not cleared) for another try at the digits, whichever part was wrong
    assert wrong_code[1] == wrong_digits[1] == both_wrong[1] == {"phone_last4": None, "dossier_outcome": "failed"}
    # one timing class: every answer takes the configured minimum, whatever the register held
    for _, _, seconds in outcomes:
        assert 0.3 <= seconds < 0.55, seconds
    assert right[1]["dossier_outcome"] == "verified"
    with sessions() as session:
        failures = session.scalars(select(VerificationFailure.code).order_by(VerificationFailure.id)).all()
        assert failures == [UNKNOWN, CODE, UNKNOWN]


def _settings(**values: Any) -> Any:
    from actions.dossiers.settings import DossierSettings

    return DossierSettings(**{"min_answer_seconds": 0.01, **values})


async def test_five_failures_lock_the_sender_even_for_the_right_digits(sessions: Sessions) -> None:
    seen = [replies((await look_up(CODE, f"{n:04d}"))[0]) for n in range(5)]
    assert seen == [["utter_dossier_not_matched"]] * 4 + [["utter_dossier_locked"]]
    messages, slots = await look_up(OTHER, "0111")
    assert replies(messages) == ["utter_dossier_locked"]
    assert {"title": "Gặp nhân viên", "payload": "/human_handoff"} in _buttons("utter_dossier_locked")
    assert slots["dossier_outcome"] == "locked" and slots["dossier_code"] is None
    # another citizen is not affected by alice's lock, except on the dossier she hammered
    assert replies((await look_up(OTHER, "0111", sender="webchat:bob"))[0])[0].startswith("Dạ, em đã xác minh")
    assert replies((await look_up(CODE, "4567", sender="webchat:bob"))[0]) == ["utter_dossier_locked"]
    # the window passes
    with sessions() as session:
        session.execute(update(VerificationFailure).values(at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=61)))
        session.commit()
    assert replies((await look_up(CODE, "4567"))[0])[0].startswith("Dạ, em đã xác minh")


def _buttons(response: str) -> list[dict[str, str]]:
    from tests.actions.dossiers.helpers import domain

    return list(domain()["responses"][response][0]["buttons"])


async def test_a_locked_sender_is_told_at_once_without_being_asked_anything(sessions: Sessions) -> None:
    for n in range(5):
        await look_up(UNKNOWN, f"{n:04d}")
    messages, slots = await run(FORM, turn("tra cứu hồ sơ", intent="dossier_status", slots={}))
    assert messages == [] and slots == {"requested_slot": None}  # the form ends before asking for the code
    messages, slots = await run(ANSWER, turn("tra cứu hồ sơ", intent="dossier_status", form_active=False))
    assert replies(messages) == ["utter_dossier_locked"] and slots["dossier_outcome"] == "locked"


async def test_five_failures_on_one_dossier_from_different_senders_lock_that_dossier(sessions: Sessions) -> None:
    for n in range(5):
        await look_up(CODE, "0000", sender=f"webchat:guesser{n}")
    assert replies((await look_up(CODE, "4567", sender="webchat:owner"))[0]) == ["utter_dossier_locked"]
    assert replies((await look_up(OTHER, "0111", sender="webchat:owner"))[0])[0].startswith("Dạ, em đã xác minh")


async def test_enumerating_a_thousand_codes_learns_nothing_and_is_locked_out(
        sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    real = lookup.default_source()

    class Counting:
        async def lookup(self, code: str, last4: str) -> DossierView | None:
            asked.append(code)
            return await real.lookup(code, last4)

    monkeypatch.setattr("actions.dossiers.actions.default_source", lambda: Counting())
    codes = [f"000.00.04.H51-200221-{n:04d}" for n in range(1000)]  # holds CODE (0001)
    codes[3], codes[700] = OTHER, CODE.replace("0001", "0000")
    seen = []
    for code in codes:
        messages, slots = await look_up(code, "1234", sender="webchat:mallory")
        seen.append((replies(messages), slots.get("dossier_outcome")))
    # the first four answers are the same refusal, whether the code exists (0001, OTHER) or not
    assert seen[:4] == [(["utter_dossier_not_matched"], "failed")] * 4
    assert set(map(str, seen[4:])) == {str((["utter_dossier_locked"], "locked"))}
    assert len(asked) == 5  # only five guesses ever reached the register
    with sessions() as session:
        outcomes = session.scalars(select(LookupAudit.outcome).where(LookupAudit.sender == "webchat:mallory")).all()
        assert outcomes.count("failed") == 5 and outcomes.count("locked") == 995


async def test_source_down_is_answered_honestly_and_is_not_a_failure(
        sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        async def lookup(self, code: str, last4: str) -> DossierView | None:
            raise SourceUnavailable("test")

    monkeypatch.setattr("actions.dossiers.actions.default_source", lambda: Down())
    messages, slots = await look_up(CODE, "4567")
    assert replies(messages) == ["utter_dossier_source_down"]
    assert slots["dossier_outcome"] == "unavailable" and slots["dossier_code"] is None
    with sessions() as session:
        assert session.scalars(select(LookupAudit.outcome)).all() == ["unavailable"]
        assert session.scalars(select(VerificationFailure)).all() == []


async def test_database_down_shows_nothing(sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    from actions.dossiers.sources import RegisterSource
    from dvcbot.db import make_engine, session_factory

    broken = session_factory(make_engine("postgresql://nobody@127.0.0.1:9/none"))
    result = await lookup.verified_lookup(RegisterSource(broken), broken, _settings(), "webchat:x", CODE, "4567")
    assert result == lookup.LookupResult("unavailable")
    # the register itself down while the audit works: unavailable, audited
    result = await lookup.verified_lookup(RegisterSource(broken), sessions, _settings(), "webchat:x", CODE, "4567")
    assert result.outcome == "unavailable" and result.view is None


async def test_the_external_api_down_behind_the_register(sessions: Sessions, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.servers import free_port

    monkeypatch.setenv("DVCBOT_DOSSIER_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DVCBOT_DOSSIER_API_RETRIES", "0")
    from tests.actions.dossiers.conftest import clear_caches

    for cached in (lookup.get_dossier_settings, lookup.default_source):
        cached.cache_clear()
    # a dossier of the register is still answered; any other could be in the API, so it is not refused as wrong
    assert (await look_up(CODE, "4567"))[1]["dossier_outcome"] == "verified"
    assert replies((await look_up(UNKNOWN, "4567"))[0]) == ["utter_dossier_source_down"]
    assert replies((await look_up(CODE, "9999"))[0]) == ["utter_dossier_source_down"]
    clear_caches()


async def test_audit_never_holds_the_digits(sessions: Sessions) -> None:
    await look_up(CODE, "4567")
    await look_up(CODE, "9876")
    with sessions() as session:
        for row in session.scalars(select(LookupAudit)):
            assert "4567" not in repr(vars(row)) and "9876" not in repr(vars(row))
        for failure in session.scalars(select(VerificationFailure)):
            assert "9876" not in repr(vars(failure))
