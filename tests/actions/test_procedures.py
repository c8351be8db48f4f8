"""Procedure answers from a real catalog database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actions.catalog.loader import load_catalog
from actions.catalog.schema import read_catalog
from actions.procedures import ActionAnswerProcedure
from tests.actions.helpers import actions_on, procedure_entity, run, tracker
from tests.actions.test_catalog import FIXTURES

ACTION = ActionAnswerProcedure()


@pytest.fixture
def catalog_db(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    catalog, errors = read_catalog(FIXTURES)
    assert not errors
    with Session(engine) as session:
        load_catalog(session, catalog)
    with actions_on(database_url, monkeypatch):
        yield


async def test_documents_are_listed_from_the_catalog_with_source_and_date(catalog_db: None) -> None:
    msgs, events = await run(ACTION, tracker("làm giấy khai sinh cần giấy tờ gì", "procedure_documents",
                                             procedure_entity("khai_sinh")))
    (msg,) = msgs
    assert msg["text"].startswith("Hồ sơ đăng ký khai sinh gồm:\n• Tờ khai đăng ký khai sinh (bản chính, 1 bộ)")
    assert "• Giấy chứng sinh (bản chính). Không có thì dùng văn bản của người làm chứng" in msg["text"]
    assert "Nguồn: https://example.gov.vn/khai-sinh · kiểm tra ngày 27/11/2026" in msg["text"]
    assert [b["payload"] for b in msg["buttons"]][:2] == ["/procedure_steps", "/procedure_fee"]
    assert events == [{"event": "slot", "timestamp": None, "name": "procedure", "value": "khai_sinh"}]


async def test_follow_up_uses_the_remembered_procedure(catalog_db: None) -> None:
    msgs, _ = await run(ACTION, tracker("thế lệ phí bao nhiêu", "procedure_fee", slots={"procedure": "khai_sinh"}))
    assert msgs[0]["text"].startswith("Lệ phí đăng ký khai sinh: Miễn/giảm: Miễn lệ phí khi đăng ký đúng hạn.")
    msgs, _ = await run(ACTION, tracker("làm online được không", "procedure_online", slots={"procedure": "khai_sinh"}))
    assert "Làm trực tuyến toàn trình" in msgs[0]["text"]
    assert "Cổng Dịch vụ công quốc gia, ứng dụng VNeID" in msgs[0]["text"]


async def test_unknown_value_is_admitted_not_invented(catalog_db: None) -> None:
    msgs, events = await run(ACTION, tracker("mất bao lâu", "procedure_duration", slots={"procedure": "khai_sinh"}))
    text = msgs[0]["text"]
    assert "chưa có thông tin đã được kiểm chứng về thời hạn giải quyết" in text
    assert "https://dichvucong.gov.vn/" in text
    assert {"title": "Gặp nhân viên", "payload": "/human_handoff"} in msgs[0]["buttons"]
    assert events[0]["value"] == "khai_sinh"


async def test_ambiguous_mention_asks_with_buttons_that_keep_the_question(catalog_db: None) -> None:
    msgs, events = await run(ACTION, tracker("căn cước cần gì", "procedure_documents", procedure_entity("can_cuoc")))
    assert msgs[0]["text"] == "Anh/chị cần làm thủ tục căn cước nào ạ?"
    assert [b["payload"] for b in msgs[0]["buttons"]] == [
        '/procedure_documents{"procedure":"can_cuoc_cap_moi"}',
        '/procedure_documents{"procedure":"can_cuoc_cap_doi"}',
        '/procedure_documents{"procedure":"can_cuoc_cap_lai"}',
    ]
    assert events[0]["value"] is None


async def test_no_entity_searches_names_without_diacritics(catalog_db: None) -> None:
    # one clear match: answered directly
    msgs, events = await run(ACTION, tracker("dang ky ket hon can gi", "procedure_steps"))
    assert "đăng ký kết hôn" in msgs[0]["text"] and events[0]["value"] == "ket_hon"
    # several close matches: offered as buttons that keep the question
    msgs, events = await run(ACTION, tracker("cap the can cuoc", "procedure_steps"))
    assert msgs[0]["text"] == "Có phải anh/chị muốn hỏi một trong các thủ tục này không ạ?"
    assert {b["payload"] for b in msgs[0]["buttons"]} == {
        '/procedure_steps{"procedure":"can_cuoc_cap_moi"}', '/procedure_steps{"procedure":"can_cuoc_cap_doi"}',
        '/procedure_steps{"procedure":"can_cuoc_cap_lai"}'}
    assert events == []


async def test_nothing_matches_says_so_and_offers_a_person(catalog_db: None) -> None:
    msgs, events = await run(ACTION, tracker("thủ tục xin cấp phép bay flycam ở đâu", "procedure_place"))
    assert "chưa tìm thấy thủ tục này" in msgs[0]["text"]
    assert msgs[0]["buttons"] == [{"title": "Gặp nhân viên", "payload": "/human_handoff"}]
    assert events == []
    msgs, _ = await run(ACTION, tracker("nộp ở đâu", "procedure_place"))
    assert msgs[0]["text"].startswith("Anh/chị đang hỏi về thủ tục nào ạ?")
    assert msgs[0]["buttons"][0]["payload"] == '/inform{"procedure":"khai_sinh"}'


async def test_long_answers_are_split_and_buttons_go_last(catalog_db: None, engine: Engine) -> None:
    from actions.catalog.models import Procedure

    with Session(engine) as session:
        proc = session.get(Procedure, "khai_sinh")
        assert proc is not None
        proc.steps = [f"Bước số {i}: " + "chuẩn bị và nộp giấy tờ theo hướng dẫn " * 3 for i in range(1, 21)]
        session.commit()
    msgs, _ = await run(ACTION, tracker("các bước", "procedure_steps", slots={"procedure": "khai_sinh"}))
    assert len(msgs) >= 2
    assert all(len(m["text"]) <= 1200 for m in msgs)
    assert all(not m["buttons"] for m in msgs[:-1]) and msgs[-1]["buttons"]
