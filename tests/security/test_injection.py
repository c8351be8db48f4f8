"""SQL and HTML injection strings through every input: stored and passed on verbatim, never interpreted.

Every citizen-controlled field (the web chat's text, button title and client id; Telegram's text, the sender's
name and callback data; Zalo's text) carries the strings below. What must hold: the request is answered normally,
Rasa receives exactly what the citizen typed, the transcript stores exactly that, no table is altered, and the web
chat page only ever inserts text as text (``textContent``/``createTextNode``).
"""

from __future__ import annotations

import re
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import httpx
import markupsafe
import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from bot.models import Conversation, InboundUpdate, Message, WebchatSession
from tests.bot.handoff_helpers import StaffDesk
from tests.bot.helpers import Channels, eventually
from tests.bot.test_console import citizen_asks_for_a_person, csrf_of
from tests.fakes import zalo as zalo_fake
from tests.fakes.telegram import text_update
from tests.fakes.zalo import text_event
from tests.security.test_console import signed_in

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


@dataclass(frozen=True)
class ConsoleForm:
    """One form of the web console (or its JSON twin). In ``fields``, ``{x}`` is replaced by the injection string,
    ``{n}`` by its number; in paths, ``{ticket}`` is a ticket the signed-in supervisor holds."""

    path: str
    fields: dict[str, str]
    shown_at: str | None = None  # a page showing what the form stored: it must show it escaped
    method: str = "POST"
    json: bool = False
    unavailable_ok: bool = False  # may answer 503 "Rasa unavailable" (the fake Rasa has no /model/parse)


X = "{x}"
# Every console form, as of the editor pages (inbox, try, catalog). tests/security/test_console.py walks the
# application's routes for the CSRF check; a form added to the console belongs here too, with its fields.
CONSOLE_FORMS: list[ConsoleForm] = [
    ConsoleForm("/console/login", {"username": X, "password": X, "next": X}),
    ConsoleForm("/console/tickets/{ticket}/reply", {"text": X}, shown_at="/console/tickets/{ticket}"),
    ConsoleForm("/console/api/tickets/{ticket}/messages", {"text": X}, json=True, shown_at="/console/tickets/{ticket}"),
    ConsoleForm("/console/tickets/{ticket}/transfer", {"to": X}),
    ConsoleForm("/console/staff", {"username": X, "display_name": X, "role": X, "password": X,
                                   "telegram_user_id": X}),
    ConsoleForm("/console/staff", {"username": "nhan-vien-{n}", "display_name": X, "role": "staff",
                                   "password": "mat-khau-moi-{n}-2025"}, shown_at="/console/staff"),
    ConsoleForm("/console/dossiers/status", {"code": X, "status": X, "detail": X, "shipment_code": X,
                                             "shipment_status": X}),
    ConsoleForm("/console/dossiers", {"code": X}, method="GET"),
    ConsoleForm("/console/conversations", {"q": X}, method="GET"),
    ConsoleForm("/console/stats", {"days": X}, method="GET"),
    ConsoleForm("/console/catalog", {"q": X, "level": X}, method="GET"),
    ConsoleForm("/console/catalog/new", {"id": X, "file": X, "name": X, "other_names": X, "authority": X}),
    ConsoleForm("/console/catalog/khai_sinh", {"name": X, "other_names": X, "authority": X, "digest": X, "file": X}),
    ConsoleForm("/console/try", {"text": X}, unavailable_ok=True),
    ConsoleForm("/console/inbox/label", {"item": "1", "action": X, "intent": X, "procedure": X, "text-1": X}),
    ConsoleForm("/console/inbox", {"labelled": X, "file": X}, method="GET"),
]
MARKUP = [t for t in INJECTIONS if "<" in t]
SQL_ERRORS = re.compile(r"sqlalchemy|psycopg|sqlite3|syntax error|OperationalError|ProgrammingError|Traceback", re.I)


def escaped(text: str) -> str:
    return str(markupsafe.escape(text))


@pytest.mark.parametrize("form", CONSOLE_FORMS, ids=lambda f: f"{f.method} {f.path} {','.join(f.fields)}")
async def test_console_forms_resist_injection(console_desk: StaffDesk, form: ConsoleForm) -> None:
    url = console_desk.gw.url
    engine = console_desk.gw.engine
    before = set(inspect(engine).get_table_names())
    await citizen_asks_for_a_person(url)
    client, csrf = await signed_in(url, "ha")
    async with aclosing(client):
        assert (await client.post("/console/tickets/1/claim", data={"csrf": csrf})).status_code == 303
        path = form.path.format(ticket=1)
        for n, text in enumerate(INJECTIONS):
            values = {k: v.replace(X, text).replace("{n}", str(n)) for k, v in form.fields.items()}
            if form.path == "/console/login":  # anonymous, with the login form's own token
                async with httpx.AsyncClient(base_url=url) as anonymous:
                    page = await anonymous.get("/console/login")
                    resp = await anonymous.post(path, data={**values, "csrf": csrf_of(page.text)})
            elif form.method == "GET":
                resp = await client.get(path, params=values)
            elif form.json:
                resp = await client.post(path, json=values, headers={"X-CSRF-Token": csrf})
            else:
                resp = await client.post(path, data={**values, "csrf": csrf})
            allowed = resp.status_code < 500 or (form.unavailable_ok and resp.status_code == 503)
            assert allowed, (text, resp.status_code, resp.text[:500])
            assert not SQL_ERRORS.search(resp.text), (text, resp.text[:500])
            if form.json:
                assert resp.headers["content-type"].startswith("application/json")
            else:
                for markup in MARKUP:  # echoed form values come back as text, never as markup
                    assert markup not in resp.text, (text, resp.status_code)
        if form.shown_at:
            page = await client.get(form.shown_at.format(ticket=1))
            assert page.status_code == 200
            for text in INJECTIONS:
                assert escaped(text.strip()) in page.text, text  # stored verbatim, shown escaped
            for markup in MARKUP:
                assert markup not in page.text
    assert set(inspect(engine).get_table_names()) == before
    with Session(engine) as session:  # the staff accounts and the conversation are untouched by the SQL strings
        assert session.scalar(select(func.count()).select_from(Conversation)) == 1
        assert session.scalar(select(Conversation.mode)) in ("staff", "waiting")  # "waiting": transferred back
        if form.path.endswith("/reply") or form.path.endswith("/messages"):
            said = list(session.scalars(select(Message.text).where(Message.sender == "staff").order_by(Message.id)))
            assert [t for t in said if t in INJECTIONS or t in [i.strip() for i in INJECTIONS]] == \
                [t.strip() for t in INJECTIONS]
