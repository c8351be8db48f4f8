"""The Telegram channel through the real python-telegram-bot client and a fake Bot API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.channels.telegram_limits import TelegramLimits
from bot.metrics import PLATFORM_LIMIT_WAIT
from bot.models import ButtonPayload, InboundUpdate, Message, OutboxEntry
from tests.bot.helpers import Channels, eventually, make_channels, max_in_window
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import (
    Failure,
    FakeTelegram,
    callback_update,
    location_update,
    message_update,
    sticker_update,
    text_update,
    voice_update,
)
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port

CHAT = 7001
SENDER = f"telegram:{CHAT}"


@pytest.fixture
def roomy(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
          fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[Channels]:
    """A gateway whose per-chat limit lets 50 replies through quickly (the order is what is under test)."""
    yield from make_channels(database_url, engine, fake_rasa, fake_telegram, fake_zalo,
                             TelegramLimits(per_chat=(100, 1.0)))


async def test_missing_or_forged_secret_is_rejected_and_nothing_stored(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        for secret in (None, "wrong-secret", ""):
            resp = await channels.telegram_update(client, text_update(1, CHAT, "xin chào"), secret=secret)
            assert (resp.status_code, resp.json()) == (401, {"error": "missing or wrong secret token"})
    await asyncio.sleep(0.3)
    assert channels.count(InboundUpdate) == 0
    assert channels.rasa.received == [] and channels.telegram.sent() == []


async def test_text_is_answered_with_an_inline_keyboard(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        resp = await channels.telegram_update(client, text_update(10, CHAT, "  xin chào "))
    assert resp.json() == {"ok": True, "update": "stored"}
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
    (sent,) = channels.telegram.sent(CHAT)
    assert sent.text == "echo: xin chào"
    assert sent.buttons == [{"text": "Lệ phí", "callback_data": "/procedure_fee"}]
    (asked,) = channels.rasa.received
    assert asked["sender"] == SENDER
    assert asked["metadata"] == {"channel": "telegram", "locale": "vi", "display_name": "Nguyễn Văn An"}
    with Session(channels.engine) as session:
        rows = session.scalars(select(Message).order_by(Message.id)).all()
        assert [(r.direction, r.text) for r in rows] == [("in", "xin chào"), ("out", "echo: xin chào"),
                                                         ("out", None)]
    # the sender marks the row after the platform answered; the custom payload is never sent
    await eventually(lambda: channels.statuses() == {"sent": 1}, what="the outbox row marked sent")


async def test_the_same_update_twice_gets_one_reply(channels: Channels) -> None:
    update = text_update(11, CHAT, "hỏi một lần")
    async with httpx.AsyncClient() as client:
        first = await channels.telegram_update(client, update)
        again = await asyncio.gather(*[channels.telegram_update(client, update) for _ in range(5)])
    assert first.json()["update"] == "stored"
    assert {r.json()["update"] for r in again} == {"duplicate"}
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
    await asyncio.sleep(1.0)  # nothing else arrives later
    assert channels.telegram.texts(CHAT) == ["echo: hỏi một lần"]
    assert len(channels.rasa.received) == 1 and channels.count(InboundUpdate) == 1


async def test_fifty_updates_of_one_chat_are_answered_in_order(roomy: Channels) -> None:
    roomy.rasa.delay = 0.01
    async with httpx.AsyncClient() as client:
        for i in range(50):  # as Telegram delivers them: one after the other, without waiting for answers
            resp = await roomy.telegram_update(client, text_update(100 + i, CHAT, f"m{i}"))
            assert resp.status_code == 200
    await eventually(lambda: len(roomy.telegram.sent(CHAT)) == 50, within=60, what="50 replies")
    assert roomy.rasa.messages(SENDER) == [f"m{i}" for i in range(50)]
    assert roomy.telegram.texts(CHAT) == [f"echo: m{i}" for i in range(50)]
    assert roomy.rasa.max_in_flight[SENDER] == 1


async def test_429_storm_every_reply_once_in_order_within_limits(channels: Channels) -> None:
    seen: Counter[int] = Counter()

    def storm(method: str, params: dict[str, Any]) -> Failure | None:
        chat = int(params["chat_id"])
        seen[chat] += 1
        if seen[chat] <= 2:
            return Failure(429, retry_after=1)
        if seen[chat] == 4:
            return Failure(502)
        return None

    channels.telegram.fail = storm
    chats = [8001 + i for i in range(6)]
    async with httpx.AsyncClient() as client:
        for n in range(3):
            for chat in chats:
                await channels.telegram_update(client, text_update(1000 + n * 10 + chat, chat, f"c{chat} m{n}"))
    await eventually(lambda: len(channels.telegram.sent()) == 18, within=60, what="18 replies")
    for chat in chats:
        assert channels.telegram.texts(chat) == [f"echo: c{chat} m{n}" for n in range(3)]  # once each, in order
        times = [c.at for c in channels.telegram.attempts() if c.chat_id == chat]
        # retry_after honoured: after the first two 429s the next call came at least ~1 s later
        assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9
        assert max_in_window([c.at for c in channels.telegram.sent(chat)], 2.9) <= 3  # ~1 message/s per chat
    assert max_in_window([c.at for c in channels.telegram.attempts()], 0.99) <= 30  # ~30 messages/s per bot
    await eventually(lambda: channels.statuses() == {"sent": 18}, what="every row marked sent")


async def test_start_sends_welcome_privacy_notice_and_menu(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(20, CHAT, "/start"))
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 3, what="the welcome")
    welcome, privacy, menu = channels.telegram.sent(CHAT)
    assert (welcome.text or "").startswith("Xin chào anh/chị!")
    assert "dữ liệu cá nhân" in (privacy.text or "")
    assert [b["text"] for b in menu.buttons] == ["Tra cứu thủ tục", "Tra cứu hồ sơ", "Bưu cục gần nhất",
                                                 "Gặp nhân viên"]
    assert channels.rasa.received == []


@pytest.mark.parametrize("update", [sticker_update(30, CHAT), voice_update(30, CHAT),
                                    message_update(30, CHAT, photo=[{"file_id": "p", "file_unique_id": "p",
                                                                     "width": 9, "height": 9}])])
async def test_media_gets_a_please_type_reply(channels: Channels, update: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, update)
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
    (sent,) = channels.telegram.sent(CHAT)
    assert "gõ câu hỏi bằng chữ" in (sent.text or "")
    assert {"text": "Gặp nhân viên", "callback_data": "/human_handoff"} in sent.buttons
    assert channels.rasa.received == []


async def test_location_reaches_rasa_as_a_location(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, location_update(40, CHAT, 21.0245, 105.8412))
    await eventually(lambda: len(channels.rasa.received) == 1, what="Rasa")
    (asked,) = channels.rasa.received
    assert asked["message"] == "/post_office_find"
    assert asked["metadata"]["location"] == {"lat": 21.0245, "lon": 105.8412}


async def test_button_press_sends_the_payload_and_answers_the_callback(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(50, CHAT, "xin chào"))
        await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
        await channels.telegram_update(client, callback_update(51, CHAT, channels.telegram.sent(CHAT)[0], "Lệ phí"))
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 2, what="the answer to the button")
    assert channels.rasa.messages(SENDER) == ["xin chào", "/procedure_fee"]
    await eventually(lambda: channels.telegram.answered_callbacks() == ["cb51"], what="answerCallbackQuery")
    with Session(channels.engine) as session:
        pressed = session.scalars(select(Message).where(Message.direction == "in").order_by(Message.id)).all()[-1]
        assert (pressed.text, pressed.payload) == ("Lệ phí", {"payload": "/procedure_fee"})


async def test_payload_longer_than_64_bytes_travels_by_reference(channels: Channels) -> None:
    long_payload = '/procedure_documents{"procedure":"dang_ky_ket_hon_co_yeu_to_nuoc_ngoai_tai_ubnd_tinh"}'
    assert len(long_payload.encode()) > 64
    channels.rasa.replies = [{"text": "Anh/chị hỏi thủ tục nào?", "buttons": [
        {"title": "Kết hôn có yếu tố nước ngoài", "payload": long_payload},
        {"title": "Khai sinh", "payload": "/procedure_documents{\"procedure\":\"khai_sinh\"}"}]}]
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(60, CHAT, "đăng ký kết hôn"))
        await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
        (sent,) = channels.telegram.sent(CHAT)
        assert all(len(b["callback_data"].encode()) <= 64 for b in sent.buttons)
        assert sent.buttons[0]["callback_data"].startswith("#")
        assert sent.buttons[1]["callback_data"] == "/procedure_documents{\"procedure\":\"khai_sinh\"}"
        await channels.telegram_update(client, callback_update(61, CHAT, sent, "Kết hôn có yếu tố nước ngoài"))
        await eventually(lambda: len(channels.rasa.received) == 2, what="the press")
    assert channels.rasa.received[-1]["message"] == long_payload
    assert channels.count(ButtonPayload) == 1


async def test_long_texts_are_split_at_telegrams_limit(channels: Channels) -> None:
    paragraph = "Thủ tục đăng ký khai sinh cần tờ khai và giấy chứng sinh. " * 20
    text = "\n\n".join([paragraph.strip()] * 9)  # about 10,500 characters
    channels.rasa.replies = [{"text": text, "buttons": [{"title": "Lệ phí", "payload": "/procedure_fee"}]}]
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(70, CHAT, "khai sinh"))
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 3, what="three parts")
    parts = channels.telegram.sent(CHAT)
    assert all(len((p.text or "").encode("utf-16-le")) // 2 <= 4096 for p in parts)
    assert "".join((p.text or "").replace("\n", "").replace(" ", "") for p in parts) == text.replace(
        "\n", "").replace(" ", "")
    assert [bool(p.buttons) for p in parts] == [False, False, True]


async def test_rasa_failing_gets_the_polite_message_on_telegram(channels: Channels) -> None:
    channels.rasa.mode = "error"
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(80, CHAT, "alo"))
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
    (sent,) = channels.telegram.sent(CHAT)
    assert "tạm gián đoạn" in (sent.text or "")
    assert {"text": "Gặp nhân viên", "callback_data": "/human_handoff"} in sent.buttons


async def test_rasa_stopped_gets_the_polite_message(database_url: str, engine: Engine,
                                                    fake_telegram: tuple[FakeTelegram, str],
                                                    fake_zalo: tuple[FakeZalo, str]) -> None:
    nobody = (FakeRasa(), free_port())  # nothing listens on that port
    telegram, _ = fake_telegram
    for gw in make_channels(database_url, engine, nobody, fake_telegram, fake_zalo):
        async with httpx.AsyncClient() as client:
            await gw.telegram_update(client, text_update(81, CHAT, "xin chào"))
        await eventually(lambda: len(telegram.sent(CHAT)) == 1, what="the reply")
    assert "tạm gián đoạn" in telegram.texts(CHAT)[0]


async def test_text_over_the_limit_gets_a_polite_reply(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(90, CHAT, "a" * 501))
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
    assert "dưới 500 ký tự" in channels.telegram.texts(CHAT)[0]
    assert channels.rasa.received == []


async def test_blocked_bot_is_recorded_not_retried(channels: Channels) -> None:
    channels.telegram.fail = lambda method, params: Failure(403, description="Forbidden: bot was blocked by the user")
    async with httpx.AsyncClient() as client:
        await channels.telegram_update(client, text_update(95, CHAT, "xin chào"))
    await eventually(lambda: len(channels.telegram.attempts()) == 1, what="the attempt")
    await asyncio.sleep(1.5)
    assert len(channels.telegram.attempts()) == 1
    with Session(channels.engine) as session:
        (row,) = session.scalars(select(OutboxEntry)).all()
        assert row.status == "failed" and "blocked" in (row.last_error or "")


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "body must be JSON"),
        (b"[1, 2]", 400, "body must be a JSON object"),
        (b'{"update_id": "7"}', 400, "update_id must be an integer"),
        (b'{"update_id": 7, "surprise": {"x": 1}}', 400, "the update has no known type"),
        (b'{"update_id": 7, "message": {"chat": "nope"}}', 400, None),
        (b"x" * 1_000_000, 413, "request body larger than 262144 bytes"),
    ],
)
async def test_bad_bodies_get_4xx_and_nothing_is_stored(channels: Channels, body: bytes, status: int,
                                                         reason: str | None) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": "tg-webhook-secret_1", "Content-Type": "application/json"}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{channels.url}/webhooks/telegram", content=body, headers=headers)
        assert resp.status_code == status
        assert reason is None or resp.json() == {"error": reason}
        assert resp.json()["error"]
        assert channels.count(InboundUpdate) == 0
        # the gateway is fine afterwards
        await channels.telegram_update(client, text_update(99, CHAT, "xin chào"))
    await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")


async def test_updates_needing_no_answer_are_acknowledged(channels: Channels) -> None:
    edited = {"update_id": 5, "edited_message": text_update(5, CHAT, "sửa")["message"]}
    joined = message_update(6, CHAT, new_chat_members=[{"id": 1, "is_bot": False, "first_name": "B"}])
    async with httpx.AsyncClient() as client:
        for update in (edited, joined):
            resp = await channels.telegram_update(client, update)
            assert resp.json() == {"ok": True, "update": "ignored"}
    assert channels.count(InboundUpdate) == 0


def sample(histogram: Any, suffix: str) -> float:
    """A value of one labelled histogram (``_count``, ``_sum``) as /metrics shows it."""
    return next(s.value for m in histogram.collect() for s in m.samples if s.name.endswith(suffix))


async def test_the_bots_limit_is_30_in_any_second_shared_by_the_replicas() -> None:
    """Shape of the per-bot limit (not its speed): 30 calls in any second, spaced, split between replicas."""
    from bot.channels.telegram_limits import for_replicas

    one = for_replicas(1)
    assert (one.bot.limit, one.bot.period) == (30, 1.0)
    assert (for_replicas(2).bot.limit, for_replicas(3).bot.limit, for_replicas(60).bot.limit) == (15, 10, 1)
    calls: list[float] = []

    async def call() -> bool:
        calls.append(time.monotonic())
        return True

    waits = PLATFORM_LIMIT_WAIT.labels("telegram")
    before = (sample(waits, "_count"), sample(waits, "_sum"))
    start = time.monotonic()
    await asyncio.gather(*(one.process_request(call, (), {}, "sendMessage", {"chat_id": 9000 + i}, None)
                           for i in range(45)))
    assert len(calls) == 45 and max_in_window(calls, 0.99) <= 30
    # every call's wait is measured (/metrics): the 15 beyond the first second's 30 waited for it
    assert sample(waits, "_count") - before[0] == 45
    assert sample(waits, "_sum") - before[1] > 15 * 0.3
    assert time.monotonic() - start >= 0.99  # the 31st waited for the first second to pass
    first = calls[:30]  # went out as soon as the spacing allowed
    assert min(b - a for a, b in itertools.pairwise(first)) >= 1 / 60 - 0.001  # never bunched up
