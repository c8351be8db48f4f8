"""The whole handoff loop through the gateway: a Telegram, a Zalo and a web chat citizen, staff in a Telegram
supergroup with forum topics (the fake Bot API), the fake Rasa asking for a person with the custom payload."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.bot.handoff_helpers import (
    LAN,
    MINH,
    STRANGER,
    StaffDesk,
    add_staff,
    handoff_gateway,
    mode,
    tickets,
    transcript,
    update_ids,
)
from tests.bot.helpers import eventually
from tests.fakes import zalo as zfake
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import (
    STAFF_GROUP,
    FakeTelegram,
    callback_update,
    group_callback_update,
    group_text_update,
    location_update,
    text_update,
)
from tests.fakes.zalo import FakeZalo


@pytest.fixture
def desk(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
         fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[StaffDesk]:
    add_staff(engine, "lan", "Chị Lan", LAN)
    add_staff(engine, "minh", "Anh Minh", MINH)
    yield from handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo)


async def test_a_telegram_citizen_the_whole_loop(desk: StaffDesk) -> None:
    tg, chat = desk.telegram, 7001
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), chat, "làm giấy khai sinh"))
        await eventually(lambda: len(tg.sent(chat)) == 1, what="the bot's answer")
        await desk.post(client, text_update(next(update_ids), chat, "gặp nhân viên"))
        await eventually(lambda: len(tg.sent(chat)) == 2, what="the queue notice")
        queued = tg.sent(chat)[1]
        assert "phiếu số 1" in (queued.text or "") and "vị trí số 1" in (queued.text or "")
        assert "khoảng 5 phút" in (queued.text or "")  # no history yet: the configured default
        assert [b["text"] for b in queued.buttons] == ["Huỷ yêu cầu"]
        assert mode(desk.gw.engine, f"telegram:{chat}") == "waiting"

        # staff: a topic named after the ticket, the summary with the recent messages and the claim button
        await eventually(lambda: bool(tg.topics), what="the ticket's topic")
        thread = tg.topic_named("#1 ")
        assert tg.topics[thread] == "#1 · Telegram · Đăng ký khai sinh"
        summary = await desk.summary(1)
        assert "Nguyễn Văn An" in (summary.text or "") and "Lý do: Công dân muốn gặp nhân viên" in (summary.text or "")
        assert "👤 làm giấy khai sinh" in (summary.text or "") and "🤖 echo: làm giấy khai sinh" in (summary.text or "")

        # the citizen writes while waiting: relayed to the topic, not to Rasa
        await desk.post(client, text_update(next(update_ids), chat, "tôi cần làm cho con gấp"))
        await eventually(lambda: any("tôi cần làm cho con gấp" in t for t in tg.topic_texts(thread)),
                         what="the relay to the topic")
        await desk.post(client, group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
        await eventually(lambda: any("Chị Lan – nhân viên bưu điện đã tiếp nhận" in t for t in tg.texts(chat)),
                         what="the citizen told who took over")
        assert mode(desk.gw.engine, f"telegram:{chat}") == "staff"
        await eventually(lambda: any(t.startswith("✅ Chị Lan nhận xử lý phiếu #1") for t in tg.topic_texts(thread)),
                         what="the claim in the topic")

        # both directions
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "Chào anh, con anh sinh ngày nào?"))
        await eventually(lambda: "💬 Chị Lan: Chào anh, con anh sinh ngày nào?" in tg.texts(chat),
                         what="the staff reply at the citizen")
        await desk.post(client, text_update(next(update_ids), chat, "ngày 3/5 ạ"))
        await eventually(lambda: "👤 Nguyễn Văn An: ngày 3/5 ạ" in tg.topic_texts(thread), what="the citizen's answer")

        # /xong ends it; the citizen rates with a button; the bot answers again
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "/xong"))
        await eventually(lambda: any("chấm điểm" in t for t in tg.texts(chat)), what="the rating question")
        rating = next(c for c in tg.sent(chat) if "chấm điểm" in (c.text or ""))
        assert [b["text"] for b in rating.buttons] == ["1 – Chưa hài lòng", "2", "3", "4", "5 – Rất hài lòng"]
        assert mode(desk.gw.engine, f"telegram:{chat}") == "bot"
        await eventually(lambda: thread in tg.closed_topics, what="the topic closed")
        await desk.post(client, callback_update(next(update_ids), chat, rating, "5 – Rất hài lòng"))
        await eventually(lambda: any("Cảm ơn anh/chị đã đánh giá" in t for t in tg.texts(chat)), what="thanks")
        await desk.post(client, text_update(next(update_ids), chat, "lệ phí bao nhiêu"))
        await eventually(lambda: "echo: lệ phí bao nhiêu" in tg.texts(chat), what="the bot again")
    (ticket,) = tickets(desk.gw.engine)
    assert (ticket.status, ticket.rating, ticket.close_reason, ticket.procedure_id) == ("closed", 5, "staff",
                                                                                        "khai_sinh")
    assert ticket.claimed_at is not None and ticket.closed_at is not None
    # Rasa saw only what was meant for the bot; it was never paused
    assert desk.gw.rasa.messages(f"telegram:{chat}") == ["làm giấy khai sinh", "gặp nhân viên", "lệ phí bao nhiêu"]


async def test_a_zalo_citizen_the_whole_loop(desk: StaffDesk) -> None:
    tg, zalo, user = desk.telegram, desk.gw.zalo, "8400000000000777"
    async with httpx.AsyncClient() as client:
        await desk.gw.zalo_event(client, zfake.text_event(user, "khiếu nại", "z1"))
        await eventually(lambda: len(zalo.sent(user)) == 2, what="the complaint's answer")
        sorry, queued = zalo.texts(user)
        assert sorry.startswith("Em rất tiếc") and "phiếu số 1" in queued and "1. Huỷ yêu cầu" in queued
        await eventually(lambda: bool(tg.topics), what="the topic")
        thread = tg.topic_named("#1 ")
        assert tg.topics[thread] == "#1 · Zalo · Phản ánh, khiếu nại"
        summary = await desk.summary(1)
        await desk.post(client, group_callback_update(next(update_ids), MINH, summary, "Nhận xử lý", "Minh"))
        await eventually(lambda: any("Anh Minh" in t for t in zalo.texts(user)), what="claimed")
        await desk.gw.zalo_event(client, zfake.text_event(user, "hồ sơ trễ hẹn 2 tuần rồi", "z2"))
        await eventually(lambda: any("hồ sơ trễ hẹn 2 tuần rồi" in t for t in tg.topic_texts(thread)),
                         what="the relay")
        await desk.post(client, group_text_update(next(update_ids), MINH, thread, "Em kiểm tra ngay ạ", "Minh"))
        await eventually(lambda: "💬 Anh Minh: Em kiểm tra ngay ạ" in zalo.texts(user), what="the reply")
        # a bare number answers the staff member: the queue's old numbered list no longer applies
        await desk.gw.zalo_event(client, zfake.text_event(user, "1", "z2b"))
        await eventually(lambda: any(t.endswith(": 1") for t in tg.topic_texts(thread)), what="the number relayed")
        assert tickets(desk.gw.engine)[0].status == "claimed"
        await eventually(lambda: any(c.buttons and c.buttons[0]["text"] == "Kết thúc" for c in tg.in_topic(thread)),
                         what="the claim's post with its button")
        ended = next(c for c in tg.in_topic(thread) if c.buttons and c.buttons[0]["text"] == "Kết thúc")
        await desk.post(client, group_callback_update(next(update_ids), MINH, ended, "Kết thúc", "Minh"))
        await eventually(lambda: any("chấm điểm" in t for t in zalo.texts(user)), what="the rating question")
        assert "5. 5 – Rất hài lòng" in zalo.texts(user)[-1]
        await desk.gw.zalo_event(client, zfake.text_event(user, "4", "z3"))  # Zalo: numbered options
        await eventually(lambda: any("Cảm ơn anh/chị đã đánh giá" in t for t in zalo.texts(user)), what="thanks")
    (ticket,) = tickets(desk.gw.engine)
    assert (ticket.reason, ticket.rating) == ("complaint", 4)
    assert desk.gw.rasa.messages(f"zalo:{user}") == ["khiếu nại"]


async def test_a_web_chat_citizen_the_whole_loop(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient(base_url=desk.gw.url) as client:
        token = (await client.post("/api/webchat/sessions")).json()["session"]
        auth = {"Authorization": f"Bearer {token}"}
        answer = (await client.post("/api/webchat/messages", json={"payload": "/human_handoff",
                                                                  "text": "Gặp nhân viên"}, headers=auth)).json()
        (queued,) = answer["messages"]
        assert "phiếu số 1" in queued["text"] and queued["buttons"] == [{"title": "Huỷ yêu cầu",
                                                                         "payload": "/handoff_cancel"}]
        cursor = answer["cursor"]
        await eventually(lambda: bool(tg.topics), what="the topic")
        thread = tg.topic_named("#1 · Web chat")
        summary = await desk.summary(1)
        await desk.post(client, group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
        said = (await client.post("/api/webchat/messages", json={"text": "cho hỏi lệ phí"}, headers=auth)).json()
        assert said["messages"] == []  # nothing from the bot while a person is on it
        await eventually(lambda: any("cho hỏi lệ phí" in t for t in tg.topic_texts(thread)), what="the relay")
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "Miễn phí ạ"))

        async def later() -> list[dict[str, object]]:
            data = (await client.get(f"/api/webchat/messages?after={cursor}", headers=auth)).json()
            return list(data["messages"])

        seen: list[dict[str, object]] = []

        async def poll() -> bool:
            seen[:] = await later()
            return any(m["text"] == "Miễn phí ạ" for m in seen)

        for _ in range(300):
            if await poll():
                break
            await asyncio.sleep(0.05)
        staff = next(m for m in seen if m["text"] == "Miễn phí ạ")
        assert staff["sender"] == "staff"  # the page labels it "Nhân viên bưu điện"
        assert any("đã tiếp nhận" in str(m["text"]) for m in seen)


async def test_the_citizen_cancels_with_thoi_or_the_button(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7101, "gặp nhân viên"))
        await desk.post(client, text_update(next(update_ids), 7101, "Thôi!"))
        await eventually(lambda: any("đã huỷ yêu cầu" in t for t in tg.texts(7101)), what="cancelled by words")
        await desk.post(client, text_update(next(update_ids), 7102, "gặp nhân viên"))
        await eventually(lambda: len(tg.sent(7102)) == 1, what="queued")
        assert "vị trí số 1" in (tg.sent(7102)[0].text or "")  # the first ticket left the queue
        await desk.post(client, callback_update(next(update_ids), 7102, tg.sent(7102)[0], "Huỷ yêu cầu"))
        await eventually(lambda: any("đã huỷ yêu cầu" in t for t in tg.texts(7102)), what="cancelled by button")
        await eventually(lambda: len(tg.closed_topics) == 2, what="both topics closed")
        await desk.post(client, text_update(next(update_ids), 7102, "xin chào"))
        await eventually(lambda: "echo: xin chào" in tg.texts(7102), what="the bot again")
    assert [(t.status, t.close_reason) for t in tickets(desk.gw.engine)] == [("cancelled", "citizen")] * 2
    assert mode(desk.gw.engine, "telegram:7101") == mode(desk.gw.engine, "telegram:7102") == "bot"
    assert "Thôi!" not in desk.gw.rasa.messages("telegram:7101")


async def test_a_stranger_in_the_staff_group_cannot_claim_or_answer(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7201, "gặp nhân viên"))
        await eventually(lambda: bool(tg.topics), what="the topic")
        thread = tg.topic_named("#1 ")
        summary = await desk.summary(1)
        await desk.post(client, group_callback_update(next(update_ids), STRANGER, summary, "Nhận xử lý",
                                                      "Khách"))
        await desk.post(client, group_text_update(next(update_ids), STRANGER, thread, "để tôi trả lời", "Khách"))
        await desk.post(client, group_text_update(next(update_ids), STRANGER, thread, "/xong", "Khách"))
        # a registered member's later message shows everything before it was handled
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "ai nhận chưa?"))
        await eventually(lambda: any("chưa có người nhận" in t for t in tg.topic_texts(thread)), what="the hint")
    (ticket,) = tickets(desk.gw.engine)
    assert ticket.status == "waiting" and ticket.claimed_by is None
    assert not any("để tôi trả lời" in t for t in tg.texts(7201))
    assert mode(desk.gw.engine, "telegram:7201") == "waiting"


async def test_the_second_claimer_in_the_group_is_told_who_won(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7301, "gặp nhân viên"))
        await eventually(lambda: bool(tg.topics), what="the topic")
        summary = await desk.summary(1)
        thread = tg.topic_named("#1 ")
        await desk.post(client, group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
        await desk.post(client, group_callback_update(next(update_ids), MINH, summary, "Nhận xử lý", "Minh"))
        await eventually(lambda: "⚠️ Anh Minh: phiếu #1 đã do Chị Lan nhận trước." in tg.topic_texts(thread),
                         what="the loser told")
        # Minh's message is not relayed: the ticket is Lan's
        await desk.post(client, group_text_update(next(update_ids), MINH, thread, "em trả lời nhé", "Minh"))
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "chị trả lời"))
        await eventually(lambda: "💬 Chị Lan: chị trả lời" in tg.texts(7301), what="Lan's reply")
    assert not any("em trả lời nhé" in t for t in tg.texts(7301))
    assert tickets(desk.gw.engine)[0].claimed_by is not None


async def test_requeue_from_the_topic_lets_another_claim(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7401, "gặp nhân viên"))
        await eventually(lambda: bool(tg.topics), what="the topic")
        thread = tg.topic_named("#1 ")
        summary = await desk.summary(1)
        await desk.post(client, group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "/chuyen"))
        await eventually(lambda: any("nhân viên khác" in t for t in tg.texts(7401)), what="the citizen told")
        assert mode(desk.gw.engine, "telegram:7401") == "waiting"
        await eventually(lambda: any((c.text or "").startswith("↪️") for c in tg.in_topic(thread)),
                         what="the requeue in the topic")
        requeued = next(c for c in tg.in_topic(thread) if (c.text or "").startswith("↪️"))
        await desk.post(client, group_callback_update(next(update_ids), MINH, requeued, "Nhận xử lý", "Minh"))
        await eventually(lambda: any("Anh Minh – nhân viên bưu điện đã tiếp nhận" in t for t in tg.texts(7401)),
                         what="claimed again")
        await desk.post(client, group_text_update(next(update_ids), MINH, thread, "/chuyen ai_do", "Minh"))
        await eventually(lambda: "⚠️ Anh Minh: Không có nhân viên có tên đăng nhập “ai_do”." in tg.topic_texts(thread),
                         what="the reason in the topic")
        await desk.post(client, group_text_update(next(update_ids), MINH, thread, "/chuyen lan", "Minh"))
        await eventually(lambda: any("chuyển sang Chị Lan" in t for t in tg.texts(7401)), what="handed to Lan")
        await desk.post(client, group_text_update(next(update_ids), LAN, thread, "Chị Lan đây ạ"))
        await eventually(lambda: "💬 Chị Lan: Chị Lan đây ạ" in tg.texts(7401), what="Lan answers")
    (ticket,) = tickets(desk.gw.engine)
    assert ticket.transfers == 2 and ticket.status == "claimed"


async def test_handoff_while_rasa_is_down_still_reaches_staff(desk: StaffDesk) -> None:
    desk.gw.rasa.mode = "error"
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7501, "xin chào"))
        await eventually(lambda: len(tg.sent(7501)) == 1, what="the unavailable notice")
        down = tg.sent(7501)[0]
        assert "tạm gián đoạn" in (down.text or "")
        await desk.post(client, callback_update(next(update_ids), 7501, down, "Gặp nhân viên"))
        await eventually(lambda: any("phiếu số 1" in t for t in tg.texts(7501)), what="queued anyway")
    assert tickets(desk.gw.engine)[0].reason == "unavailable"


async def test_the_transcript_keeps_both_sides_in_order(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7601, "gặp nhân viên"))
        await eventually(lambda: bool(tg.topics), what="the topic")
        thread = tg.topic_named("#1 ")
        summary = await desk.summary(1)
        await desk.post(client, group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
        await eventually(lambda: mode(desk.gw.engine, "telegram:7601") == "staff", what="claimed")
        for i in range(5):
            await desk.post(client, text_update(next(update_ids), 7601, f"dân {i}"))
            await desk.post(client, group_text_update(next(update_ids), LAN, thread, f"cán bộ {i}"))
        await eventually(lambda: sum(t.startswith("💬") for t in tg.texts(7601)) == 5, what="the replies")
        await eventually(lambda: sum(t.startswith("👤") for t in tg.topic_texts(thread)) == 5, what="the relays")
    lines = [text for sender, text in transcript(desk.gw.engine, "telegram:7601") if sender in ("citizen", "staff")]
    assert [x for x in lines if x and x.startswith("dân")] == [f"dân {i}" for i in range(5)]
    assert [x for x in lines if x and x.startswith("cán bộ")] == [f"cán bộ {i}" for i in range(5)]
    assert [t.removeprefix("💬 Chị Lan: ") for t in tg.texts(7601) if t.startswith("💬")] == [
        f"cán bộ {i}" for i in range(5)]
    assert [t.removeprefix("👤 Nguyễn Văn An: ") for t in tg.topic_texts(thread) if t.startswith("👤")] == [
        f"dân {i}" for i in range(5)]


async def test_while_waiting_the_bot_still_finds_post_offices_and_a_skipped_rating_is_fine(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        await desk.post(client, text_update(next(update_ids), 7701, "gặp nhân viên"))
        await eventually(lambda: len(tg.sent(7701)) == 1, what="queued")
        await desk.post(client, location_update(next(update_ids), 7701, 21.0245, 105.853))  # a shared location
        await eventually(lambda: "echo: /post_office_find" in tg.texts(7701), what="the bot's answer")
        assert mode(desk.gw.engine, "telegram:7701") == "waiting"
        summary = await desk.summary(1)
        await desk.post(client, group_callback_update(next(update_ids), LAN, summary, "Nhận xử lý"))
        await desk.post(client, group_text_update(next(update_ids), LAN, tg.topic_named("#1 "), "/xong"))
        await eventually(lambda: any("chấm điểm" in t for t in tg.texts(7701)), what="the rating question")
        await desk.post(client, text_update(next(update_ids), 7701, "thủ tục cấp hộ chiếu"))  # no rating: fine
        await eventually(lambda: "echo: thủ tục cấp hộ chiếu" in tg.texts(7701), what="the bot")
        await desk.post(client, text_update(next(update_ids), 7701, "5"))  # now just a number for the bot
        await eventually(lambda: "echo: 5" in tg.texts(7701), what="the bot again")
    (ticket,) = tickets(desk.gw.engine)
    assert (ticket.rating, ticket.rating_state) == (None, "skipped")


@pytest.fixture
def hurried(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
            fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[StaffDesk]:
    """Timers in fractions of a minute, and a staff group that is not a forum."""
    fake_telegram[0].forum = False
    yield from handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo,
                               handoff_unclaimed_minutes=0.01, handoff_remind_minutes=0.02)


async def test_unclaimed_tickets_are_told_and_reminded_even_without_topics(hurried: StaffDesk) -> None:
    tg = hurried.telegram
    async with httpx.AsyncClient() as client:
        await hurried.post(client, text_update(next(update_ids), 7801, "gặp nhân viên"))
        await eventually(lambda: any("chờ lâu" in t for t in tg.texts(7801)), what="the honest notice")
        notice = next(c for c in tg.sent(7801) if "chờ lâu" in (c.text or ""))
        assert [b["text"] for b in notice.buttons] == ["Tiếp tục chờ", "Bưu điện gần nhất", "Huỷ yêu cầu"]
        await eventually(lambda: any(t.startswith("⏰ Phiếu #1") for t in tg.texts(STAFF_GROUP)),
                         what="a reminder in the group")
        assert tg.topics == {}  # not a forum: the posts go to the group itself
        await hurried.post(client, callback_update(next(update_ids), 7801, notice, "Tiếp tục chờ"))
        await eventually(lambda: any("chờ thêm" in t for t in tg.texts(7801)), what="keep waiting")
    assert all(c.thread is None for c in tg.sent(STAFF_GROUP))
    assert tickets(hurried.gw.engine)[0].topic_id == 0
