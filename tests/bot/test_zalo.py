"""The Zalo OA channel against a fake Open API and OAuth server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.models import ChannelToken, InboundUpdate, Message, OutboxEntry
from tests.bot.helpers import Channels, eventually, make_channels
from tests.fakes import zalo as fake
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import Failure, FakeZalo

USER = "8400000000000001"
SENDER = f"zalo:{USER}"


async def test_missing_or_forged_signature_is_rejected_and_nothing_stored(channels: Channels) -> None:
    event = fake.text_event(USER, "xin chào", "m1")
    body, headers = fake.signed(event)
    _, forged = fake.signed(event, oa_secret_key="not-the-key")
    tampered = body.replace("xin chào".encode(), "chào xin".encode())
    async with httpx.AsyncClient() as client:
        for content, hdrs, reason in [
            (body, {}, "missing X-ZEvent-Signature"),
            (body, forged, "bad X-ZEvent-Signature"),
            (tampered, headers, "bad X-ZEvent-Signature"),
            (body, {"X-ZEvent-Signature": "mac=" + "0" * 64}, "bad X-ZEvent-Signature"),
        ]:
            resp = await client.post(f"{channels.url}/webhooks/zalo", content=content, headers=hdrs)
            assert (resp.status_code, resp.json()) == (401, {"error": reason})
    await asyncio.sleep(0.3)
    assert channels.count(InboundUpdate) == 0 and channels.rasa.received == []


async def test_text_is_answered_with_numbered_options(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        resp = await channels.zalo_event(client, fake.text_event(USER, "xin chào", "m2"))
    assert resp.json() == {"ok": True, "event": "stored"}
    await eventually(lambda: len(channels.zalo.sent(USER)) == 1, what="the reply")
    (sent,) = channels.zalo.sent(USER)
    assert sent.text == "echo: xin chào\n\n1. Lệ phí\nAnh/chị gõ số thứ tự (ví dụ 1) để chọn ạ."
    assert channels.rasa.received[0]["sender"] == SENDER
    assert channels.rasa.received[0]["metadata"]["channel"] == "zalo"


async def test_a_number_chooses_an_option(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.zalo_event(client, fake.text_event(USER, "xin chào", "m3"))
        await eventually(lambda: channels.statuses() == {"sent": 1}, what="the reply marked sent")
        await channels.zalo_event(client, fake.text_event(USER, " 1 ", "m4"))
        await eventually(lambda: len(channels.rasa.received) == 2, what="the choice")
        await channels.zalo_event(client, fake.text_event(USER, "7", "m5"))  # no such option: plain text
        await eventually(lambda: len(channels.rasa.received) == 3, what="the number")
    assert channels.rasa.messages(SENDER) == ["xin chào", "/procedure_fee", "7"]

    def lines() -> list[str | None]:
        with Session(channels.engine) as session:
            return list(session.scalars(select(Message.text).where(Message.direction == "in").order_by(Message.id)))

    await eventually(lambda: len(lines()) == 3, what="the third line stored")  # Rasa answers before the commit
    assert lines() == ["xin chào", "1 (Lệ phí)", "7"]


async def test_the_same_event_twice_gets_one_reply(channels: Channels) -> None:
    event = fake.text_event(USER, "hỏi một lần", "m6")
    async with httpx.AsyncClient() as client:
        results = await asyncio.gather(*[channels.zalo_event(client, event) for _ in range(4)])
    assert sorted(r.json()["event"] for r in results) == ["duplicate"] * 3 + ["stored"]
    await eventually(lambda: len(channels.zalo.sent(USER)) == 1, what="the reply")
    await asyncio.sleep(1.0)
    assert len(channels.zalo.sent(USER)) == 1 and len(channels.rasa.received) == 1


async def test_location_reaches_rasa_as_a_location(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.zalo_event(client, fake.location_event(USER, 10.7769, 106.7009, "m7"))
    await eventually(lambda: len(channels.rasa.received) == 1, what="Rasa")
    (asked,) = channels.rasa.received
    assert asked["message"] == "/post_office_find"
    assert asked["metadata"]["location"] == {"lat": 10.7769, "lon": 106.7009}


@pytest.mark.parametrize("name", ["user_send_image", "user_send_sticker", "user_send_audio", "user_send_file"])
async def test_media_gets_a_please_type_reply(channels: Channels, name: str) -> None:
    async with httpx.AsyncClient() as client:
        await channels.zalo_event(client, fake.media_event(name, USER, "m8"))
    await eventually(lambda: len(channels.zalo.sent(USER)) == 1, what="the reply")
    assert "gõ câu hỏi bằng chữ" in channels.zalo.texts(USER)[0]
    assert channels.rasa.received == []


async def test_follow_gets_the_welcome(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await channels.zalo_event(client, fake.follow_event(USER))
    await eventually(lambda: len(channels.zalo.sent(USER)) == 3, what="the welcome")
    welcome, privacy, menu = channels.zalo.texts(USER)
    assert welcome.startswith("Xin chào anh/chị!") and "dữ liệu cá nhân" in privacy
    assert "1. Tra cứu thủ tục\n2. Tra cứu hồ sơ\n3. Bưu cục gần nhất\n4. Gặp nhân viên" in menu


async def test_expired_token_is_refreshed_once_and_the_rotation_survives_a_restart(
        database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
        fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> None:
    zalo, _ = fake_zalo
    configured_refresh = zalo.refresh_token
    for gw in make_channels(database_url, engine, fake_rasa, fake_telegram, fake_zalo):
        zalo.expire_access_token()
        async with httpx.AsyncClient() as client:
            await gw.zalo_event(client, fake.text_event(USER, "xin chào", "m9"))
            await eventually(lambda: len(zalo.sent(USER)) == 1, what="the reply")
    assert zalo.refreshes == 1
    assert [c.accepted for c in zalo.calls] == [False, True]  # -216, then the retry with the new token
    with Session(engine) as session:
        stored = session.get(ChannelToken, "zalo")
        assert stored is not None and stored.refresh_token == zalo.refresh_token != configured_refresh
    # the gateway starts again with the (now used up) configured refresh token: it keeps the rotated one
    for gw in make_channels(database_url, engine, fake_rasa, fake_telegram, fake_zalo):
        async with httpx.AsyncClient() as client:
            await gw.zalo_event(client, fake.text_event(USER, "lần nữa", "m10"))
            await eventually(lambda: len(zalo.sent(USER)) == 2, what="the second reply")
    assert zalo.refreshes == 1


async def test_outside_the_reply_window_is_recorded_not_retried(channels: Channels) -> None:
    channels.zalo.fail = lambda user, message: Failure(error=-230)
    async with httpx.AsyncClient() as client:
        await channels.zalo_event(client, fake.text_event(USER, "xin chào", "m11"))
    await eventually(lambda: channels.statuses() == {"failed": 1}, what="the row marked failed")
    await asyncio.sleep(1.5)
    assert len(channels.zalo.calls) == 1
    with Session(channels.engine) as session:
        (row,) = session.scalars(select(OutboxEntry)).all()
        assert "reply window" in (row.last_error or "")


async def test_429_and_5xx_storm_every_reply_once_in_order(channels: Channels) -> None:
    seen: Counter[str] = Counter()

    def storm(user: str, message: dict[str, Any]) -> Failure | None:
        seen[user] += 1
        return {1: Failure(429, retry_after=1), 2: Failure(503)}.get(seen[user])

    channels.zalo.fail = storm
    users = [f"84000000000001{i:02d}" for i in range(4)]
    async with httpx.AsyncClient() as client:
        for n in range(3):
            for user in users:
                await channels.zalo_event(client, fake.text_event(user, f"{user} m{n}", f"s{user}{n}"))
    await eventually(lambda: len(channels.zalo.sent()) == 12, within=60, what="12 replies")
    for user in users:
        assert [t.split("\n")[0] for t in channels.zalo.texts(user)] == [f"echo: {user} m{n}" for n in range(3)]
    await eventually(lambda: channels.statuses() == {"sent": 12}, what="every row marked sent")


async def test_long_texts_are_split_at_2000_characters(channels: Channels) -> None:
    text = "\n".join(f"Dòng {i}: giấy tờ cần mang theo khi làm thủ tục tại bưu điện." for i in range(80))
    channels.rasa.replies = [{"text": text}]
    async with httpx.AsyncClient() as client:
        await channels.zalo_event(client, fake.text_event(USER, "giấy tờ", "m12"))
    await eventually(lambda: len(channels.zalo.sent(USER)) == 3, what="three parts")
    parts = channels.zalo.texts(USER)
    assert all(len(p) <= 2000 for p in parts)
    assert "\n".join(parts) == text


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        ({"event_name": "user_send_gift", "sender": {"id": USER}, "message": {"msg_id": "x"}}, 400,
         "unknown event type: user_send_gift"),
        ({"event_name": "user_send_text", "sender": {"id": USER}, "message": {"text": "hi"}}, 400,
         "message event without message.msg_id"),
        ({"event_name": "user_send_location", "sender": {"id": USER},
          "message": {"msg_id": "x", "attachments": []}}, 400, "location event without valid coordinates"),
        ({"sender": {"id": USER}}, 400, "event_name missing"),
        ({"event_name": "user_seen_message", "sender": {"id": "oa"}, "message": {"msg_id": "x"}}, 200, None),
    ],
)
async def test_odd_events(channels: Channels, event: dict[str, Any], status: int, reason: str | None) -> None:
    event = {"app_id": fake.APP_ID, "timestamp": "1700000000000", **event}
    async with httpx.AsyncClient() as client:
        resp = await channels.zalo_event(client, event)
    assert resp.status_code == status
    assert resp.json() == ({"error": reason} if reason else {"ok": True, "event": "ignored"})
    assert channels.count(InboundUpdate) == 0


async def test_malformed_and_huge_bodies_get_4xx(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        url = f"{channels.url}/webhooks/zalo"
        sig = {"X-ZEvent-Signature": "mac=" + "0" * 64}
        resp = await client.post(url, content=b"{oops", headers=sig)
        assert (resp.status_code, resp.json()) == (400, {"error": "body must be JSON"})
        resp = await client.post(url, content=json.dumps(["x"]).encode(), headers=sig)
        assert resp.status_code == 400
        resp = await client.post(url, content=b"x" * 1_000_000, headers=sig)
        assert (resp.status_code, resp.json()) == (413, {"error": "request body larger than 262144 bytes"})
        assert channels.count(InboundUpdate) == 0
        await channels.zalo_event(client, fake.text_event(USER, "xin chào", "m13"))  # still fine afterwards
    await eventually(lambda: len(channels.zalo.sent(USER)) == 1, what="the reply")
