"""Forged, replayed, oversized and malformed webhook calls: refused with a 4xx, nothing stored, nothing answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.models import InboundUpdate, Message
from tests.bot.helpers import TELEGRAM_SECRET, Channels, eventually
from tests.fakes import zalo as zalo_fake
from tests.fakes.telegram import text_update
from tests.fakes.zalo import text_event

CHAT = 4242001


def nothing_happened(channels: Channels) -> None:
    assert channels.count(InboundUpdate) == 0
    assert channels.count(Message) == 0
    assert channels.rasa.received == []


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


FORGED_SECRETS = [None, "", "wrong", TELEGRAM_SECRET.upper(), TELEGRAM_SECRET[:-1], TELEGRAM_SECRET + "x",
                  "x" + TELEGRAM_SECRET, TELEGRAM_SECRET * 2]


async def test_forged_telegram_webhooks_are_refused(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        for n, secret in enumerate(FORGED_SECRETS):
            resp = await channels.telegram_update(client, text_update(n + 1, CHAT, "xin chào"), secret=secret)
            assert resp.status_code == 401, secret
    nothing_happened(channels)


def _forgeries() -> list[tuple[str, bytes, dict[str, str]]]:
    event = text_event("9001", "xin chào", "m-forged")
    body, headers = zalo_fake.signed(event)
    other_key_body, other_key = zalo_fake.signed(event, oa_secret_key="not-the-oa-key")
    tampered = body.replace("xin chào".encode(), b"DROP TABLE")
    later = dict(event, timestamp=str(int(event["timestamp"]) + 1))
    return [
        ("no signature", body, {"Content-Type": "application/json"}),
        ("signed with another key", other_key_body, other_key),
        ("body changed after signing", tampered, headers),
        ("timestamp changed after signing", json.dumps(later, ensure_ascii=False).encode(), headers),
        ("signature without mac=", body, {**headers, "X-ZEvent-Signature": headers["X-ZEvent-Signature"][4:]}),
        ("another app's id", *zalo_fake.signed(event, app_id="4100000000000000999")),
        ("upper-case digest", body, {**headers, "X-ZEvent-Signature": headers["X-ZEvent-Signature"].upper()}),
    ]


async def test_forged_zalo_webhooks_are_refused(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        for name, body, headers in _forgeries():
            resp = await client.post(f"{channels.url}/webhooks/zalo", content=body, headers=headers)
            assert resp.status_code == 401, name
    nothing_happened(channels)


async def test_a_replayed_telegram_update_is_answered_once(channels: Channels) -> None:
    """Replays arrive concurrently, later, and with other content under the same update_id: one answer only."""
    update = text_update(7001, CHAT, "làm căn cước cần gì")
    altered = text_update(7001, CHAT, "một nội dung khác")
    async with httpx.AsyncClient() as client:
        burst = await asyncio.gather(*[channels.telegram_update(client, update) for _ in range(8)])
        assert all(r.status_code == 200 for r in burst)
        await eventually(lambda: len(channels.telegram.sent(CHAT)) == 1, what="the reply")
        later = await channels.telegram_update(client, update)
        other = await channels.telegram_update(client, altered)
    assert later.json()["update"] == other.json()["update"] == "duplicate"
    await asyncio.sleep(0.5)
    assert channels.rasa.messages(f"telegram:{CHAT}") == ["làm căn cước cần gì"]
    assert channels.telegram.texts(CHAT) == ["echo: làm căn cước cần gì"]
    assert channels.count(InboundUpdate) == 1


async def test_a_replayed_zalo_event_is_answered_once(channels: Channels) -> None:
    event = text_event("9002", "bưu điện gần nhất", "m-replay")
    body, headers = zalo_fake.signed(event)
    async with httpx.AsyncClient() as client:
        burst = await asyncio.gather(*[client.post(f"{channels.url}/webhooks/zalo", content=body, headers=headers)
                                       for _ in range(8)])
        assert all(r.status_code == 200 for r in burst)
        await eventually(lambda: len(channels.zalo.sent("9002")) == 1, what="the reply")
        # the same message id, re-signed with a new timestamp and other text (a replay with a fresh signature)
        again = dict(text_event("9002", "khác", "m-replay"), timestamp=str(int(event["timestamp"]) + 5000))
        resp = await client.post(f"{channels.url}/webhooks/zalo", content=zalo_fake.signed(again)[0],
                                 headers=zalo_fake.signed(again)[1])
    assert resp.json()["event"] == "duplicate"
    await asyncio.sleep(0.5)
    assert channels.rasa.messages("zalo:9002") == ["bưu điện gần nhất"]
    assert len(channels.zalo.sent("9002")) == 1


HUGE = b'{"update_id": 1, "message": {"text": "' + b"a" * (300 * 1024) + b'"}}'


@pytest.mark.parametrize("path,headers", [
    ("/webhooks/telegram", {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}),
    ("/webhooks/zalo", {"X-ZEvent-Signature": "mac=00"}),
    ("/api/webchat/messages", {"Authorization": "Bearer whatever"}),
])
async def test_oversized_bodies_are_refused_even_without_a_content_length(channels: Channels, path: str,
                                                                           headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        if path == "/api/webchat/messages":  # a real session, so that the size is what gets it refused
            token = (await client.post(f"{channels.url}/api/webchat/sessions")).json()["session"]
            headers = {"Authorization": f"Bearer {token}"}
        declared = await client.post(f"{channels.url}{path}", content=HUGE, headers=headers)
        streamed = await client.post(f"{channels.url}{path}", content=chunks(HUGE), headers=headers)  # chunked
    assert declared.status_code == 413
    assert streamed.status_code == 413
    nothing_happened(channels)


MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not JSON", b"update_id=1"),
    ("invalid UTF-8", b'{"update_id": 1, "message": "\xff\xfe"}'),
    ("a JSON array", b"[1, 2, 3]"),
    ("a JSON string", b'"hello"'),
    ("NaN", b'{"update_id": NaN}'),
    ("update_id as text", b'{"update_id": "1", "message": {}}'),
    ("no known type", b'{"update_id": 5}'),
    ("message of the wrong type", b'{"update_id": 6, "message": "hi"}'),
    ("chat without an id", b'{"update_id": 7, "message": {"message_id": 1, "date": 1, "chat": {}, "text": "x"}}'),
    ("callback without data", b'{"update_id": 8, "callback_query": {"id": "c"}}'),
]


async def test_malformed_telegram_bodies_get_4xx(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        for name, body in MALFORMED:
            resp = await client.post(f"{channels.url}/webhooks/telegram", content=body,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
                                              "Content-Type": "application/json"})
            assert 400 <= resp.status_code < 500, (name, resp.status_code, resp.text[:200])
    assert channels.count(InboundUpdate) == 0


DEEP = b'{"a":' * 5000 + b"1" + b"}" * 5000  # 5,000 levels: more than Python's recursion limit


@pytest.mark.parametrize("path", ["/webhooks/telegram", "/webhooks/zalo"])
async def test_deeply_nested_json_is_not_a_server_error(channels: Channels, path: str) -> None:
    async with httpx.AsyncClient() as client:
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "X-ZEvent-Signature": "mac=forged",
                   "Content-Type": "application/json"}
        resp = await client.post(f"{channels.url}{path}", content=DEEP, headers=headers)
    assert 400 <= resp.status_code < 500, resp.text[:200]


def _signed_raw(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    return zalo_fake.signed(event)


ODD_EVENTS: list[dict[str, Any]] = [
    {"event_name": "user_send_text", "timestamp": "1"},
    {"event_name": "user_send_text", "timestamp": "1", "sender": {"id": ""}, "message": {"msg_id": "x"}},
    {"event_name": "user_send_text", "timestamp": "1", "sender": {"id": "1"}, "message": {"msg_id": ["x"]}},
    {"event_name": "user_send_text", "timestamp": "1", "sender": {"id": "1"}, "message": {"msg_id": "x", "text": 5}},
    {"event_name": "user_send_location", "timestamp": "1", "sender": {"id": "1"},
     "message": {"msg_id": "y", "attachments": [{"payload": {"coordinates": {"latitude": "91", "longitude": "0"}}}]}},
    {"event_name": "' OR 1=1 --", "timestamp": "1", "sender": {"id": "1"}},
    {"event_name": None, "timestamp": "1"},
]


async def test_malformed_zalo_events_get_4xx(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        for event in ODD_EVENTS:
            body, headers = _signed_raw(event)
            resp = await client.post(f"{channels.url}/webhooks/zalo", content=body, headers=headers)
            assert 400 <= resp.status_code < 500, (event, resp.text[:200])
    assert channels.count(InboundUpdate) == 0


BAD_WEB_BODIES = [
    b"", b"{", b"[]", b'{"text": 5}', b'{"text": ["a"]}', b'{"payload": "no-slash"}', b'{"payload": "/' + b"x" * 600
    + b'"}', b'{"location": {"lat": 100, "lon": 0}}', b'{"location": {"lat": true, "lon": 0}}',
    b'{"text": "ok", "client_id": ""}', b'{"text": "ok", "client_id": 7}', b'{"text": "\xff"}',
]


async def test_malformed_web_chat_bodies_get_4xx(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        token = (await client.post(f"{channels.url}/api/webchat/sessions")).json()["session"]
        for body in BAD_WEB_BODIES:
            resp = await client.post(f"{channels.url}/api/webchat/messages", content=body,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            assert 400 <= resp.status_code < 500, (body[:40], resp.text[:200])
    assert channels.rasa.received == []


BAD_AUTH = [None, "", "Bearer", "Basic abc", "Bearer ' OR '1'='1", "Bearer " + "A" * 5000,
            "Bearer " + "0" * 64]


async def test_web_chat_needs_a_real_session(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{channels.url}/api/webchat/sessions")  # a session exists; none of these is it
        for auth in BAD_AUTH:
            headers = {"Authorization": auth} if auth is not None else {}
            posted = await client.post(f"{channels.url}/api/webchat/messages", json={"text": "xin chào"},
                                       headers=headers)
            fetched = await client.get(f"{channels.url}/api/webchat/messages", headers=headers)
            assert posted.status_code == fetched.status_code == 401, auth
    assert channels.rasa.received == []


async def test_an_update_id_out_of_range_is_not_a_server_error(channels: Channels) -> None:
    """Telegram's ids fit in 52 bits; a body with a larger one (only possible with the secret) must not crash."""
    update = text_update(2**70, CHAT, "xin chào")
    async with httpx.AsyncClient() as client:
        resp = await channels.telegram_update(client, update)
    assert resp.status_code < 500, resp.text[:200]
