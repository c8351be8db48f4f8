"""A citizen looks up a dossier of the demo register through the web chat, the real model and action server."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.dossiers import notify, register
from actions.dossiers.models import LookupAudit, Notification
from dvcbot.db import make_engine
from tests.e2e.conftest import Stack
from tests.e2e.test_webchat_flow import chat, say

pytestmark = pytest.mark.e2e

POSTED = "000.00.04.H26-261112-0012"  # Đăng ký khai sinh, result sent by post; phone ends 4567
ASK_DIGITS = "4 chữ số cuối của số điện thoại"


def text_of(messages: list[dict[str, object]]) -> str:
    return "\n".join(str(m["text"]) for m in messages)


def press(client: httpx.Client, auth: dict[str, str], payload: str, title: str) -> list[dict[str, object]]:
    resp = client.post("/api/webchat/messages", json={"payload": payload, "text": title}, headers=auth)
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, object]] = resp.json()["messages"]
    assert messages, f"no reply to the button {title!r}"
    return messages


def test_look_up_fail_the_digits_succeed_subscribe_and_get_notified(stack: Stack) -> None:
    client, auth = chat(stack)
    asked = text_of(say(client, auth, "tra cứu hồ sơ giúp tôi"))
    assert "mã hồ sơ" in asked and "Giấy tiếp nhận hồ sơ và hẹn trả kết quả" in asked

    assert ASK_DIGITS in text_of(say(client, auth, "000.00.04.h26 261112 0012"))

    failed = text_of(say(client, auth, "9999"))
    assert "chưa xác minh được hồ sơ" in failed and ASK_DIGITS in failed  # asked again, the code is kept
    assert "khai sinh" not in failed and POSTED not in failed and "9999" not in failed

    answer = say(client, auth, "4567")
    shown = text_of(answer)
    assert "Tình trạng hồ sơ đăng ký khai sinh của anh/chị" in shown
    assert f"• Mã hồ sơ: {POSTED}" in shown and "• Ngày tiếp nhận: 12/11/2026" in shown
    assert "• Tình trạng: Kết quả đã được gửi qua bưu điện" in shown
    assert "• Mã bưu gửi: EI261118012VN (đang vận chuyển)" in shown
    assert "4567" not in shown and "0901" not in shown

    subscribed = press(client, auth, "/dossier_subscribe", "Báo tôi khi có thay đổi")
    assert "khi hồ sơ có thay đổi em sẽ nhắn" in text_of(subscribed)

    # staff record the delivery; the stack's change detection ("notify" process) queues one message and the
    # gateway puts it into this web chat, where the page's polling finds it
    cursor = client.get("/api/webchat/messages", headers=auth).json()["cursor"]
    engine = make_engine(stack.settings.database_url)
    try:
        with Session(engine) as session:
            register.set_status(session, POSTED, register.Change("delivered", shipment_status="delivered"))
        deadline = time.monotonic() + 60
        arrived: list[str] = []
        while not arrived and time.monotonic() < deadline:
            time.sleep(1)
            later = client.get(f"/api/webchat/messages?after={cursor}", headers=auth).json()["messages"]
            arrived = [str(m["text"]) for m in later if "vừa được cập nhật" in str(m["text"])]
        assert len(arrived) == 1, "the notification did not reach the web chat within 60 s"
        assert "Đã trả kết quả" in arrived[0] and "4567" not in arrived[0]
        with Session(engine) as session:
            assert notify.detect_changes(session) == 0  # nothing is queued twice
            sender = session.scalars(select(LookupAudit.sender).where(LookupAudit.outcome == "verified")).first()
            (note,) = session.scalars(select(Notification).where(Notification.conversation_key == sender)).all()
            assert note.state == "sent"
            outcomes = session.scalars(select(LookupAudit.outcome).where(LookupAudit.sender == sender)
                                       .order_by(LookupAudit.id)).all()
            assert outcomes == ["failed", "verified"]
    finally:
        engine.dispose()
    time.sleep(2)
    later = client.get(f"/api/webchat/messages?after={cursor}", headers=auth).json()["messages"]
    assert sum("vừa được cập nhật" in str(m["text"]) for m in later) == 1

    assert "đã dừng gửi thông báo" in text_of(say(client, auth, "dừng thông báo"))


def test_a_wrong_code_gets_the_same_answer_as_wrong_digits(stack: Stack) -> None:
    client, auth = chat(stack)
    say(client, auth, "tra cứu hồ sơ")
    say(client, auth, "000.00.04.H26-261112-0999")
    wrong_code = text_of(say(client, auth, "4567"))
    client, auth = chat(stack)
    say(client, auth, "kiểm tra tình trạng hồ sơ")
    say(client, auth, "000.00.12.H26-261109-0034")
    wrong_digits = text_of(say(client, auth, "4567"))
    assert wrong_code == wrong_digits
    assert "chưa xác minh được hồ sơ" in wrong_code


def test_a_bad_code_is_explained_and_the_citizen_can_leave(stack: Stack) -> None:
    client, auth = chat(stack)
    say(client, auth, "tra cứu hồ sơ")
    explained = text_of(say(client, auth, "hồ sơ khai sinh của con tôi"))
    assert "chưa phải là một mã hồ sơ đúng dạng" in explained and "250612 là ngày 12/06/2025" in explained
    left = text_of(press(client, auth, "/stop", "Dừng tra cứu"))
    assert "đã dừng tra cứu hồ sơ" in left
    assert text_of(say(client, auth, "xin chào")).startswith("Xin chào anh/chị!")


def test_five_failures_lock_the_look_up_and_offer_a_person(stack: Stack) -> None:
    client, auth = chat(stack)
    say(client, auth, "tra cứu hồ sơ")
    for n in range(5):
        # a new code typed at the digits prompt replaces the previous one
        assert ASK_DIGITS in text_of(say(client, auth, f"000.00.04.H26-261112-09{n:02d}"))
        last = say(client, auth, "1111")
    assert "tạm khoá việc tra cứu hồ sơ" in text_of(last)
    assert {"title": "Gặp nhân viên", "payload": "/human_handoff"} in last[-1]["buttons"]  # type: ignore[operator]
    # starting again is refused at once, before anything is asked
    again = say(client, auth, f"tra cứu hồ sơ {POSTED}")
    assert "tạm khoá việc tra cứu hồ sơ" in text_of(again) and ASK_DIGITS not in text_of(again)
