"""SQL and HTML injection strings through every input: stored and passed on verbatim, never interpreted.

Every citizen-controlled field (the web chat's text, button title and client id; Telegram's text, the sender's
name and callback data; Zalo's text) carries the strings below. What must hold: the request is answered normally,
Rasa receives exactly what the citizen typed, the transcript stores exactly that, no table is altered, and the web
chat page only ever inserts text as text (``textContent``/``createTextNode``).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from bot.models import Conversation, InboundUpdate, Message, WebchatSession
from tests.bot.helpers import Channels, eventually
from tests.fakes import zalo as zalo_fake
from tests.fakes.telegram import text_update
from tests.fakes.zalo import text_event

INJECTIONS = [
    "'; DROP TABLE conversations; --",
    "1' OR '1'='1",
    "\" OR \"\"=\"",
    "'); DELETE FROM inbound_updates; --",
    "%' UNION SELECT token_hash, 1 FROM webchat_sessions --",
    "làm giấy khai sinh'; UPDATE conversations SET mode='staff'; --",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "\"><svg/onload=alert(1)>",
    "javascript:alert(1)",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "../../../../etc/passwd",
    "\u202etxt.exe",
]

STATIC = Path(__file__).resolve().parents[2] / "bot" / "webchat" / "static"


def tables(channels: Channels) -> set[str]:
    return set(inspect(channels.engine).get_table_names())


def transcript(channels: Channels, key: str) -> list[str]:
    with Session(channels.engine) as session:
        conv = session.scalars(select(Conversation).where(Conversation.key == key)).one()
        assert conv.mode == "bot"
        return [r.text or "" for r in session.scalars(
            select(Message).where(Message.conversation_id == conv.id, Message.direction == "in")
            .order_by(Message.id))]


async def test_web_chat_text_title_and_client_id(channels: Channels) -> None:
    before = tables(channels)
    async with httpx.AsyncClient(base_url=channels.url) as client:
        token = (await client.post("/api/webchat/sessions")).json()["session"]
        auth = {"Authorization": f"Bearer {token}"}
        for n, text in enumerate(INJECTIONS):
            resp = await client.post("/api/webchat/messages", json={"text": text, "client_id": text[:90] + str(n)},
                                     headers=auth)
            assert resp.status_code == 200, resp.text
            assert resp.headers["content-type"].startswith("application/json")
            assert [m["text"] for m in resp.json()["messages"]] == [f"echo: {text.strip()}"]
            pressed = await client.post("/api/webchat/messages", json={"payload": "/greet", "text": text},
                                        headers=auth)
            assert pressed.status_code == 200
        history = (await client.get("/api/webchat/messages", headers=auth)).json()["messages"]
    key = next(m["sender"] for m in channels.rasa.received)
    assert [m["message"] for m in channels.rasa.received if m["message"] != "/greet"] == [t.strip() for t in
                                                                                         INJECTIONS]
    assert transcript(channels, key) == [t for text in INJECTIONS for t in (text.strip(), text)]
    assert f"echo: {INJECTIONS[0]}" in [m["text"] for m in history]
    assert tables(channels) == before
    assert channels.count(WebchatSession) == 1 and channels.count(InboundUpdate) == 2 * len(INJECTIONS)


async def test_telegram_text_name_and_callback_data(channels: Channels) -> None:
    before = tables(channels)
    chats = [5150000 + n for n in range(len(INJECTIONS))]  # one chat each: Telegram's 1 message/s per chat
    async with httpx.AsyncClient() as client:
        for n, (chat, text) in enumerate(zip(chats, INJECTIONS, strict=True)):
            update = text_update(9000 + 2 * n, chat, text)
            update["message"]["from"]["first_name"] = text  # the display name is the citizen's too
            assert (await channels.telegram_update(client, update)).status_code == 200
            pressed = {"update_id": 9001 + 2 * n, "callback_query": {
                "id": f"cb{n}", "from": update["message"]["from"], "chat_instance": "ci", "data": text[:64],
                "message": {"message_id": 1, "date": 1, "chat": {"id": chat, "type": "private"}, "text": "x"}}}
            assert (await channels.telegram_update(client, pressed)).status_code == 200
    await eventually(lambda: all(len(channels.telegram.sent(c)) == 2 for c in chats), within=60, what="replies")
    for chat, text in zip(chats, INJECTIONS, strict=True):
        assert channels.rasa.messages(f"telegram:{chat}") == [text.strip(), text[:64]]
        assert channels.telegram.texts(chat) == [f"echo: {text.strip()}", f"echo: {text[:64]}"]
    names = {b["metadata"]["display_name"] for b in channels.rasa.received}
    assert names == {f"{text} Văn An" for text in INJECTIONS}
    assert tables(channels) == before


async def test_zalo_text(channels: Channels) -> None:
    before = tables(channels)
    async with httpx.AsyncClient() as client:
        for n, text in enumerate(INJECTIONS):
            body, headers = zalo_fake.signed(text_event("7007", text, f"inj-{n}"))
            resp = await client.post(f"{channels.url}/webhooks/zalo", content=body, headers=headers)
            assert resp.status_code == 200, resp.text
    await eventually(lambda: len(channels.zalo.sent("7007")) == len(INJECTIONS), within=60, what="replies")
    assert channels.rasa.messages("zalo:7007") == [t.strip() for t in INJECTIONS]
    assert transcript(channels, "zalo:7007") == [t.strip() for t in INJECTIONS]
    assert tables(channels) == before


async def test_a_nul_character_is_not_a_server_error(channels: Channels) -> None:
    """PostgreSQL cannot store U+0000 in text: the gateway must refuse or clean it, not fail."""
    async with httpx.AsyncClient(base_url=channels.url) as client:
        token = (await client.post("/api/webchat/sessions")).json()["session"]
        resp = await client.post("/api/webchat/messages", json={"text": "xin\u0000chào"},
                                 headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code < 500, resp.text[:200]


def test_the_web_chat_page_inserts_text_as_text() -> None:
    script = (STATIC / "chat.js").read_text(encoding="utf-8")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", script)
    assert "createTextNode" in script or "textContent" in script


# TODO(console): the staff/supervisor web console is being built in bot/. When it lands, list each of its forms
# here as (path, {field: value}) — login, reply to a citizen, close a ticket, notes, search — with a logged-in
# session and CSRF token from its own fixture, and the test below sends every INJECTIONS string through every field
# and checks: 2xx/4xx (never 5xx), stored verbatim, rendered escaped in the console's HTML (no raw "<script>").
CONSOLE_FORMS: list[tuple[str, dict[str, str]]] = []


@pytest.mark.parametrize("path,fields", CONSOLE_FORMS)
async def test_console_forms_resist_injection(channels: Channels, path: str, fields: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=channels.url) as client:
        for text in INJECTIONS:
            resp = await client.post(path, data={name: text for name in fields})
            assert resp.status_code < 500
            assert "<script>alert" not in resp.text
