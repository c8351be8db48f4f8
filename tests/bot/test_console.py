"""The web console over HTTP: accounts and sessions, CSRF, rate-limited login, roles, and the staff's loop with
a web chat citizen (queue, claim, reply, end), concurrent claims, the supervisor's page, ``dvcbot staff``."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from contextlib import aclosing

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.console.auth import hash_password, password_problem, verify_password
from bot.models import StaffMember, Ticket
from dvcbot.cli import main
from dvcbot.settings import get_settings
from tests.bot.handoff_helpers import StaffDesk, add_staff, handoff_gateway, mode, tickets
from tests.bot.helpers import eventually
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo

PASSWORD = "mat-khau-2025"


@pytest.fixture
def desk(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
         fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[StaffDesk]:
    for username, name, role in (("lan", "Chị Lan", "staff"), ("minh", "Anh Minh", "staff"),
                                 ("ha", "Chị Hà", "supervisor"), ("bt", "Biên tập", "editor")):
        add_staff(engine, username, name, role=role, password_hash=hash_password(PASSWORD))
    yield from handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo,
                               console_login_max_failures=3)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/console/login")
    return await client.post("/console/login", data={"username": username, "password": password,
                                                     "csrf": csrf_of(page.text), "next": "/console/"})


async def console(url: str, username: str) -> tuple[httpx.AsyncClient, str]:
    """A signed-in browser-like client and its CSRF token."""
    client = httpx.AsyncClient(base_url=url, follow_redirects=False)
    resp = await sign_in(client, username)
    assert resp.status_code == 303, resp.text
    page = await client.get("/console/conversations")
    return client, csrf_of(page.text)


async def citizen_asks_for_a_person(url: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    client = httpx.AsyncClient(base_url=url)
    token = (await client.post("/api/webchat/sessions")).json()["session"]
    auth = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/api/webchat/messages", json={"text": "gặp nhân viên"}, headers=auth)
    assert "phiếu số" in resp.json()["messages"][0]["text"]
    return client, auth


def test_passwords_are_salted_scrypt() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert stored != hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored) and not verify_password("mat-khau-2024", stored)
    assert not verify_password(PASSWORD, None) and not verify_password(PASSWORD, "garbage")
    assert password_problem("ngan") and password_problem("1234567890123") and password_problem("chichuthuong")
    assert password_problem(PASSWORD) is None


async def test_login_sets_a_safe_session_cookie_and_logout_ends_it(desk: StaffDesk) -> None:
    async with httpx.AsyncClient(base_url=desk.gw.url) as client:
        resp = await client.get("/console/")
        assert resp.status_code == 303 and resp.headers["location"] == "/console/login?next=/console/"
        assert (await client.get("/console/api/queue")).status_code == 401
        resp = await sign_in(client, "lan")
        assert resp.status_code == 303 and resp.headers["location"] == "/console/"
        cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("dvcbot_console="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain http here; over https (or DVCBOT_CONSOLE_SECURE_COOKIES=true) it is
        page = await client.get("/console/")
        assert page.status_code == 200 and "Chị Lan" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        resp = await client.post("/console/logout", data={"csrf": csrf_of(page.text)})
        assert resp.status_code == 303
        assert (await client.get("/console/")).status_code == 303  # the session is gone on the server too


async def test_secure_cookie_when_configured(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
                                             fake_telegram: tuple[FakeTelegram, str],
                                             fake_zalo: tuple[FakeZalo, str]) -> None:
    add_staff(engine, "lan", "Chị Lan", password_hash=hash_password(PASSWORD))
    for desk in handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo,
                                console_secure_cookies="true"):
        async with httpx.AsyncClient(base_url=desk.gw.url) as client:
            resp = await client.get("/console/login")
            cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("dvcbot_console_login="))
            assert "Secure" in cookie and "HttpOnly" in cookie
            # a browser keeps a Secure cookie to https: over plain http the login form cannot be used at all
            resp = await sign_in(client, "lan")
            assert resp.status_code == 403


async def test_wrong_passwords_lock_the_account_for_a_while(desk: StaffDesk) -> None:
    async with httpx.AsyncClient(base_url=desk.gw.url) as client:
        for _ in range(3):
            resp = await sign_in(client, "lan", "sai-mat-khau-1")
            assert resp.status_code == 401 and "không đúng" in resp.text
        resp = await sign_in(client, "lan")  # the right password no longer helps
        assert resp.status_code == 429 and "quá nhiều lần" in resp.text
        assert (await sign_in(client, "minh")).status_code == 303  # other accounts are not affected
        assert (await sign_in(client, "khong-ai", "x")).status_code == 401


async def test_forms_need_the_csrf_token_and_this_origin(desk: StaffDesk) -> None:
    await citizen_asks_for_a_person(desk.gw.url)
    client, csrf = await console(desk.gw.url, "lan")
    async with aclosing(client):
        assert (await client.post("/console/tickets/1/claim")).status_code == 403
        assert (await client.post("/console/tickets/1/claim", data={"csrf": "forged"})).status_code == 403
        resp = await client.post("/console/tickets/1/claim", data={"csrf": csrf},
                                 headers={"Origin": "https://evil.example"})
        assert resp.status_code == 403
        resp = await client.post("/console/api/tickets/1/messages", json={"text": "x"})
        assert resp.status_code == 403
        assert tickets(desk.gw.engine)[0].status == "waiting"
        resp = await client.post("/console/tickets/1/claim", data={"csrf": csrf})
        assert resp.status_code == 303 and resp.headers["location"] == "/console/tickets/1"
    async with httpx.AsyncClient(base_url=desk.gw.url) as fresh:  # login without the form's cookie
        resp = await fresh.post("/console/login", data={"username": "lan", "password": PASSWORD, "csrf": "x"})
        assert resp.status_code == 403


async def test_roles(desk: StaffDesk) -> None:
    staff, _ = await console(desk.gw.url, "lan")
    editor = httpx.AsyncClient(base_url=desk.gw.url)
    resp = await sign_in(editor, "bt")
    assert resp.headers["location"] == "/console/home"
    supervisor, _ = await console(desk.gw.url, "ha")
    async with aclosing(staff), aclosing(editor), aclosing(supervisor):
        assert (await staff.get("/console/stats")).status_code == 403
        assert (await staff.get("/console/staff")).status_code == 403
        assert (await editor.get("/console/")).status_code == 403
        assert (await editor.get("/console/home")).status_code == 200
        assert (await supervisor.get("/console/stats")).status_code == 200
        assert (await supervisor.get("/console/")).status_code == 200


async def test_a_web_chat_citizen_handled_from_the_console(desk: StaffDesk) -> None:
    citizen, auth = await citizen_asks_for_a_person(desk.gw.url)
    staff, csrf = await console(desk.gw.url, "lan")
    async with aclosing(citizen), aclosing(staff):
        queue = (await staff.get("/console/api/queue")).json()
        (waiting,) = queue["waiting"]
        assert (waiting["id"], waiting["channel"], waiting["procedure"]) == (1, "Web chat", "Đăng ký khai sinh")
        assert waiting["last"] == "gặp nhân viên"
        resp = await staff.post("/console/tickets/1/claim", data={"csrf": csrf})
        assert resp.headers["location"] == "/console/tickets/1"
        page = await staff.get("/console/tickets/1")
        assert "Phiếu #1" in page.text and 'id="reply"' in page.text and "gặp nhân viên" in page.text
        assert mode(desk.gw.engine, (await _key(desk))) == "staff"

        resp = await staff.post("/console/api/tickets/1/messages", json={"text": "Chào anh, em là Lan"},
                                headers={"X-CSRF-Token": csrf})
        assert resp.status_code == 200
        seen = (await citizen.get("/api/webchat/messages", headers=auth)).json()["messages"]
        assert seen[-1] == {"id": seen[-1]["id"], "sender": "staff", "text": "Chào anh, em là Lan", "buttons": []}
        assert any("Chị Lan – nhân viên bưu điện đã tiếp nhận" in m["text"] for m in seen)

        await citizen.post("/api/webchat/messages", json={"text": "em cần hỏi lệ phí"}, headers=auth)
        last = max(m["id"] for m in (await staff.get("/console/api/tickets/1/messages")).json()["messages"]
                   if m["sender"] == "staff")
        later = (await staff.get(f"/console/api/tickets/1/messages?after={last}")).json()
        assert [m["text"] for m in later["messages"]] == ["em cần hỏi lệ phí"] and later["mine"]

        resp = await staff.post("/console/tickets/1/end", data={"csrf": csrf})
        assert resp.headers["location"] == "/console/?ended=1"
        seen = (await citizen.get("/api/webchat/messages", headers=auth)).json()["messages"]
        assert "chấm điểm" in seen[-1]["text"] and len(seen[-1]["buttons"]) == 5
        rated = await citizen.post("/api/webchat/messages", json={"payload": "/handoff_rate_4", "text": "4"},
                                   headers=auth)
        assert "Cảm ơn" in rated.json()["messages"][0]["text"]
        closed = (await staff.get("/console/api/tickets/1/messages")).json()
        assert closed["status"] == "closed"
        assert (await staff.post("/console/api/tickets/1/messages", json={"text": "còn đó không?"},
                                 headers={"X-CSRF-Token": csrf})).status_code == 409
    assert (tickets(desk.gw.engine)[0].rating, tickets(desk.gw.engine)[0].status) == (4, "closed")


async def _key(desk: StaffDesk) -> str:
    with Session(desk.gw.engine) as session:
        ticket = session.scalars(select(Ticket)).first()
        assert ticket is not None
        from bot.models import Conversation

        conv = session.get(Conversation, ticket.conversation_id)
        assert conv is not None
        return conv.key


async def test_two_staff_claim_at_once_in_the_console(desk: StaffDesk) -> None:
    citizen, _ = await citizen_asks_for_a_person(desk.gw.url)
    (lan, lan_csrf), (minh, minh_csrf) = await console(desk.gw.url, "lan"), await console(desk.gw.url, "minh")
    async with aclosing(citizen), aclosing(lan), aclosing(minh):
        first, second = await asyncio.gather(lan.post("/console/tickets/1/claim", data={"csrf": lan_csrf}),
                                             minh.post("/console/tickets/1/claim", data={"csrf": minh_csrf}))
        places = sorted([first.headers["location"], second.headers["location"]])
        assert places == ["/console/?lost=1", "/console/tickets/1"]
        loser = lan if first.headers["location"].endswith("lost=1") else minh
        winner_name = "Anh Minh" if loser is lan else "Chị Lan"
        page = await loser.get("/console/?lost=1")
        assert f"Phiếu #1 đã do {winner_name} nhận trước." in page.text


async def test_transfer_to_a_colleague_and_take_over(desk: StaffDesk) -> None:
    citizen, auth = await citizen_asks_for_a_person(desk.gw.url)
    (lan, lan_csrf), (minh, minh_csrf) = await console(desk.gw.url, "lan"), await console(desk.gw.url, "minh")
    async with aclosing(citizen), aclosing(lan), aclosing(minh):
        await lan.post("/console/tickets/1/claim", data={"csrf": lan_csrf})
        minh_id = await _staff_id(desk, "minh")
        resp = await lan.post("/console/tickets/1/transfer", data={"csrf": lan_csrf, "to": str(minh_id)})
        assert resp.status_code == 303
        assert (await minh.get("/console/api/queue")).json()["mine"][0]["id"] == 1
        await minh.post("/console/api/tickets/1/messages", json={"text": "Em Minh tiếp nhận"},
                        headers={"X-CSRF-Token": minh_csrf})
        seen = (await citizen.get("/api/webchat/messages", headers=auth)).json()["messages"]
        assert seen[-1]["text"] == "Em Minh tiếp nhận"
        # a staff member takes another conversation over on their own
        other = httpx.AsyncClient(base_url=desk.gw.url)
        token = (await other.post("/api/webchat/sessions")).json()["session"]
        await other.post("/api/webchat/messages", json={"text": "xin chào"},
                         headers={"Authorization": f"Bearer {token}"})
        listing = await lan.get("/console/conversations")
        conv_id = re.findall(r"/console/conversations/(\d+)/take", listing.text)[0]
        resp = await lan.post(f"/console/conversations/{conv_id}/take", data={"csrf": lan_csrf})
        assert resp.status_code == 303 and resp.headers["location"] == "/console/tickets/2"
        await other.aclose()
    assert tickets(desk.gw.engine)[1].reason == "staff"


async def _staff_id(desk: StaffDesk, username: str) -> int:
    with Session(desk.gw.engine) as session:
        return session.scalars(select(StaffMember.id).where(StaffMember.username == username)).one()


async def test_the_supervisor_sees_charts_and_adds_accounts(desk: StaffDesk) -> None:
    citizen, _ = await citizen_asks_for_a_person(desk.gw.url)
    staff, csrf = await console(desk.gw.url, "lan")
    boss, boss_csrf = await console(desk.gw.url, "ha")
    async with aclosing(citizen), aclosing(staff), aclosing(boss):
        await staff.post("/console/tickets/1/claim", data={"csrf": csrf})
        await staff.post("/console/tickets/1/end", data={"csrf": csrf})
        page = await boss.get("/console/stats?days=7")
        assert page.status_code == 200
        assert page.text.count("<svg") == 5 and "Số phiếu mỗi ngày" in page.text
        assert "Đăng ký khai sinh" in page.text and "Chị Lan" in page.text
        assert "<script" not in page.text.split("</main>")[0]  # charts are drawn on the server

        resp = await boss.post("/console/staff", data={"csrf": boss_csrf, "username": "hoa", "display_name": "Chị Hoa",
                                                       "role": "staff", "password": "ngan"})
        assert resp.status_code == 400 and "ít nhất 10 ký tự" in resp.text
        resp = await boss.post("/console/staff", data={"csrf": boss_csrf, "username": "hoa", "display_name": "Chị Hoa",
                                                       "role": "staff", "password": "", "telegram_user_id": "4455"})
        assert resp.headers["location"] == "/console/staff?added=1"
        resp = await boss.post("/console/staff", data={"csrf": boss_csrf, "username": "hoa", "display_name": "X",
                                                       "role": "staff", "telegram_user_id": "4456"})
        assert "đã có người dùng" in resp.text
    with Session(desk.gw.engine) as session:
        hoa = session.scalars(select(StaffMember).where(StaffMember.username == "hoa")).one()
        assert (hoa.telegram_user_id, hoa.password_hash) == (4455, None)


async def test_dvcbot_staff_add_then_sign_in(desk: StaffDesk, database_url: str, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DVCBOT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("mot-mat-khau-dai\n"))
        assert main(["staff", "add", "Tuan", "--name", "Anh Tuấn", "--role", "supervisor", "--telegram-id", "777",
                     "--password-stdin"]) == 0
        monkeypatch.setattr("sys.stdin", io.StringIO("mot-mat-khau-dai\n"))
        assert main(["staff", "add", "tuan", "--name", "X", "--password-stdin"]) == 1
        monkeypatch.setattr("sys.stdin", io.StringIO("12345\n"))
        assert main(["staff", "add", "yen", "--name", "Chị Yến", "--password-stdin"]) == 1
        assert main(["staff", "list"]) == 0
        assert main(["staff", "disable", "lan"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr()
    assert "Added tuan (supervisor)." in out.out and "taken" in out.err and "Password refused" in out.err
    assert "tuan" in out.out and "telegram:777" in out.out
    async with httpx.AsyncClient(base_url=desk.gw.url) as client:
        resp = await sign_in(client, "tuan", "mot-mat-khau-dai")
        assert resp.status_code == 303
        assert (await client.get("/console/stats")).status_code == 200
        assert (await sign_in(client, "lan")).status_code == 401  # disabled
    await eventually(lambda: True)
