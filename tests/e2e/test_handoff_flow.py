"""Handoff with the real Rasa model and action server: the citizen asks for a person after a procedure question,
a registered staff member handles it in the Telegram staff group (fake Bot API), and the bot takes over again
with its context (the procedure under discussion)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.models import StaffMember, Ticket
from tests.bot.helpers import TELEGRAM_SECRET
from tests.e2e.conftest import Platforms, Stack
from tests.fakes.telegram import Call, group_callback_update, group_text_update

pytestmark = pytest.mark.e2e
update_ids = itertools.count(900_000)
STAFF_TG = 77001


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def staff_group_post(stack: Stack, update: dict[str, object]) -> None:
    resp = httpx.post(f"{stack.url}/webhooks/telegram", json=update, timeout=10,
                      headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert resp.status_code == 200, resp.text


def test_web_chat_citizen_to_telegram_staff_and_back(stack: Stack, platforms: Platforms,
                                                    stack_engine: Engine) -> None:
    with Session(stack_engine) as session:
        session.add(StaffMember(username="e2e-hoa", display_name="Chị Hoa", telegram_user_id=STAFF_TG))
        session.commit()
    client = httpx.Client(base_url=stack.url, timeout=30)
    auth = {"Authorization": f"Bearer {client.post('/api/webchat/sessions').json()['session']}"}

    def say(text: str) -> dict[str, object]:
        resp = client.post("/api/webchat/messages", json={"text": text}, headers=auth)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    assert "khai sinh" in str(say("làm giấy khai sinh cần giấy tờ gì")["messages"])
    queued = say("cho tôi gặp nhân viên")
    (notice,) = queued["messages"]  # type: ignore[misc]
    assert "phiếu số" in notice["text"] and "vị trí số" in notice["text"]
    with Session(stack_engine) as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
        assert ticket is not None
        assert (ticket.reason, ticket.procedure_id, ticket.procedure_name) == (
            "human_handoff", "khai_sinh", "Đăng ký khai sinh")
        ticket_id = ticket.id

    tg = platforms.telegram
    summary: list[Call] = []

    def summary_posted() -> bool:
        names = [t for t, name in list(tg.topics.items()) if name.startswith(f"#{ticket_id} ")]
        summary[:] = [c for c in tg.in_topic(names[0]) if c.buttons] if names else []
        return bool(summary)

    wait_for(summary_posted, "the ticket's topic and summary")
    thread = summary[0].thread
    assert thread is not None
    assert tg.topics[thread] == f"#{ticket_id} · Web chat · Đăng ký khai sinh"
    assert "làm giấy khai sinh cần giấy tờ gì" in (summary[0].text or "")

    staff_group_post(stack, group_callback_update(next(update_ids), STAFF_TG, summary[0], "Nhận xử lý", "Hoa"))
    assert say("em cần làm gấp trong tuần")["messages"] == []
    wait_for(lambda: any("em cần làm gấp trong tuần" in t for t in tg.topic_texts(thread)), "the relay to staff")
    staff_group_post(stack, group_text_update(next(update_ids), STAFF_TG, thread, "Anh mang CCCD ra bưu điện nhé",
                                              "Hoa"))
    cursor = int(queued["cursor"])  # type: ignore[call-overload]
    seen: list[dict[str, object]] = []

    def staff_reply_arrived() -> bool:
        seen[:] = client.get(f"/api/webchat/messages?after={cursor}", headers=auth).json()["messages"]
        return any(m["text"] == "Anh mang CCCD ra bưu điện nhé" and m["sender"] == "staff" for m in seen)

    wait_for(staff_reply_arrived, "the staff reply in the web chat")
    staff_group_post(stack, group_text_update(next(update_ids), STAFF_TG, thread, "/xong", "Hoa"))
    wait_for(lambda: staff_reply_arrived() and any("chấm điểm" in str(m["text"]) for m in seen), "the rating")
    rated = client.post("/api/webchat/messages", json={"payload": "/handoff_rate_5", "text": "5 – Rất hài lòng"},
                        headers=auth).json()
    assert "Cảm ơn anh/chị đã đánh giá" in rated["messages"][0]["text"]
    # the bot again, and it still knows the procedure under discussion
    fee = say("lệ phí bao nhiêu")
    assert "khai sinh" in str(fee["messages"]).lower()
    with Session(stack_engine) as session:
        done = session.get(Ticket, ticket_id)
        assert done is not None and (done.status, done.rating) == ("closed", 5)
