"""action_request_handoff: the custom payload the gateway turns into a ticket."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actions.catalog.models import Procedure
from actions.handoff import ActionRequestHandoff
from tests.actions.helpers import run, tracker


@pytest.fixture
def catalog(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    with Session(engine) as session:
        session.add(Procedure(id="khai_sinh", name="Đăng ký khai sinh", field="Hộ tịch", sources=["x"],
                              verified_on=dt.date(2025, 7, 1), source_file="data/catalog/x.yml", content_hash="0"))
        session.commit()
    monkeypatch.setattr("actions.handoff.db_session", lambda: Session(engine))
    return engine


async def test_asking_for_a_person_carries_the_procedure_under_discussion(catalog: Engine) -> None:
    msgs, events = await run(ActionRequestHandoff(), tracker("cho tôi gặp nhân viên", "human_handoff",
                                                             slots={"procedure": "khai_sinh"}))
    assert msgs == [{"text": None, "buttons": [], "elements": [], "custom": {"handoff": {
        "reason": "human_handoff", "procedure": "khai_sinh", "procedure_name": "Đăng ký khai sinh"}},
        "template": None, "response": None, "image": None, "attachment": None}]
    assert events == []


async def test_a_complaint_without_a_procedure(catalog: Engine) -> None:
    msgs, _ = await run(ActionRequestHandoff(), tracker("dịch vụ kém quá", "complaint"))
    assert msgs[0]["custom"] == {"handoff": {"reason": "complaint", "procedure": None, "procedure_name": None}}
    assert msgs[0]["text"] is None  # the gateway answers the citizen, with the queue's numbers


async def test_an_unknown_procedure_id_is_passed_on_without_a_name(catalog: Engine) -> None:
    msgs, _ = await run(ActionRequestHandoff(), tracker("gặp nhân viên", "human_handoff",
                                                        slots={"procedure": "da_xoa"}))
    assert msgs[0]["custom"]["handoff"]["procedure_name"] is None
