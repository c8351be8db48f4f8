"""Real conversations through the web chat API, the real Rasa model and the real action server."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.catalog.models import Procedure
from dvcbot.db import make_engine
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def chat(stack: Stack) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=stack.url, timeout=30)
    token = client.post("/api/webchat/sessions").json()["session"]
    return client, {"Authorization": f"Bearer {token}"}


def say(client: httpx.Client, auth: dict[str, str], text: str) -> list[dict[str, object]]:
    resp = client.post("/api/webchat/messages", json={"text": text}, headers=auth)
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, object]] = resp.json()["messages"]
    assert messages, f"no reply to {text!r}"
    return messages


def test_health_reports_everything_up(stack: Stack) -> None:
    data = httpx.get(f"{stack.url}/healthz").json()
    assert data["status"] == "ok"
    assert {data[k]["status"] for k in ("database", "rasa", "actions")} == {"up"}


def test_greeting_is_answered(stack: Stack) -> None:
    client, auth = chat(stack)
    (reply,) = say(client, auth, "xin chào")
    assert str(reply["text"]).startswith("Xin chào anh/chị!")
    assert {"title": "Làm giấy khai sinh", "payload": '/procedure_documents{"procedure":"khai_sinh"}'} in reply[
        "buttons"]  # type: ignore[operator]
    assert {"title": "Gặp nhân viên", "payload": "/human_handoff"} in reply["buttons"]  # type: ignore[operator]


def test_birth_registration_documents_come_from_the_catalog(stack: Stack) -> None:
    engine = make_engine(stack.settings.database_url)
    with Session(engine) as session:
        proc = session.scalars(select(Procedure).where(Procedure.id == "khai_sinh")).one()
        first_document = proc.documents[0]["name"]
        source = proc.sources[0]
    engine.dispose()
    client, auth = chat(stack)
    replies = say(client, auth, "làm giấy khai sinh cần giấy tờ gì")
    text = "\n".join(str(r["text"]) for r in replies)
    assert text.startswith("Hồ sơ đăng ký khai sinh gồm:")
    assert first_document in text
    assert f"Nguồn: {source}" in text

    # the next question names no procedure: the bot remembers it
    replies = say(client, auth, "thế lệ phí bao nhiêu")
    text = "\n".join(str(r["text"]) for r in replies)
    assert "khai sinh" in text
    assert "Nguồn:" in text or "chưa có thông tin đã được kiểm chứng" in text


def test_unaccented_text_is_understood(stack: Stack) -> None:
    client, auth = chat(stack)
    replies = say(client, auth, "lam giay khai sinh can giay to gi")
    assert str(replies[0]["text"]).startswith("Hồ sơ đăng ký khai sinh gồm:")


def test_action_server_down_gets_a_polite_answer(stack: Stack) -> None:
    client, auth = chat(stack)
    stack.kill("actions")
    try:
        (reply,) = say(client, auth, "làm giấy khai sinh cần giấy tờ gì")
        assert "tạm gián đoạn" in str(reply["text"])
        assert httpx.get(f"{stack.url}/healthz").json()["actions"]["status"] == "down"
    finally:
        stack.restart("actions")
    assert str(say(client, auth, "làm giấy khai sinh cần giấy tờ gì")[0]["text"]).startswith("Hồ sơ")


def test_rasa_down_gets_a_polite_answer(stack: Stack) -> None:
    client, auth = chat(stack)
    stack.kill("rasa")
    try:
        (reply,) = say(client, auth, "xin chào")
        assert "tạm gián đoạn" in str(reply["text"])
        assert {"title": "Gặp nhân viên", "payload": "/human_handoff"} in reply["buttons"]  # type: ignore[operator]
    finally:
        stack.restart("rasa")
    assert str(say(client, auth, "xin chào")[0]["text"]).startswith("Xin chào anh/chị!")


def test_three_questions_about_one_procedure(stack: Stack) -> None:
    client, auth = chat(stack)
    first = "\n".join(str(r["text"]) for r in say(client, auth, "đăng ký khai tử cần giấy tờ gì"))
    assert first.startswith("Hồ sơ đăng ký khai tử gồm:")
    # the catalog holds no confirmed fee for it: the bot says so instead of guessing
    fee = "\n".join(str(r["text"]) for r in say(client, auth, "thế lệ phí bao nhiêu"))
    assert "chưa có thông tin đã được kiểm chứng về lệ phí của thủ tục đăng ký khai tử" in fee
    online = "\n".join(str(r["text"]) for r in say(client, auth, "làm online được không"))
    assert online.startswith("Nộp trực tuyến đăng ký khai tử: Làm trực tuyến toàn trình")


def test_generic_can_cuoc_offers_three_choices(stack: Stack) -> None:
    client, auth = chat(stack)
    (reply,) = say(client, auth, "làm căn cước mất bao lâu")
    assert reply["text"] == "Anh/chị cần làm thủ tục căn cước nào ạ?"
    payloads = [b["payload"] for b in reply["buttons"]]  # type: ignore[union-attr]
    assert payloads == ['/procedure_duration{"procedure":"can_cuoc_cap_moi"}',
                        '/procedure_duration{"procedure":"can_cuoc_cap_doi"}',
                        '/procedure_duration{"procedure":"can_cuoc_cap_lai"}']
    resp = client.post("/api/webchat/messages", headers=auth,
                       json={"payload": payloads[2], "text": "Cấp lại thẻ căn cước"})
    assert str(resp.json()["messages"][0]["text"]).startswith("Thời hạn giải quyết cấp lại thẻ căn cước:")


def test_post_office_by_ward(stack: Stack) -> None:
    client, auth = chat(stack)
    (reply,) = say(client, auth, "bưu điện gần phường Hoàn Kiếm ở đâu")
    assert str(reply["text"]).startswith("Bưu điện ở khu vực anh/chị hỏi:\n\n1. Bưu điện Trung tâm Hoàn Kiếm")
    (ask,) = say(client, auth, "tìm bưu điện gần nhất")
    assert str(ask["text"]).startswith("Anh/chị đang ở phường/xã nào ạ?")
    (reply,) = say(client, auth, "phường Hoàn Kiếm")
    assert "Bưu điện Trung tâm Hoàn Kiếm" in str(reply["text"])
