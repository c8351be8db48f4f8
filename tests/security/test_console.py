"""The web console's own defences, on every route it has: CSRF on every POST (the routes are read from the
application, so a page added later is covered without touching this file), sessions that cannot be planted,
failed logins limited per account and per address, cookie flags.

tests/bot/test_console.py shows the same defences from a staff member's point of view on a few routes;
tests/security/test_injection.py sends SQL/HTML injection strings through every console form.
"""

from __future__ import annotations

import re
from contextlib import aclosing
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Mount, Route

from bot.app import create_app
from bot.models import ConsoleSession, StaffMember
from dvcbot.settings import Settings
from tests.bot.handoff_helpers import StaffDesk
from tests.bot.test_console import csrf_of, sign_in
from tests.security.conftest import CONSOLE_PASSWORD

PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
CSRF_REFUSED = "(CSRF)"  # in the text of the console's 403 for a failed CSRF check


def walk(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, set[str]]]:
    out: list[tuple[str, set[str]]] = []
    for route in routes:
        if isinstance(route, Mount):
            out += walk(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            out.append((prefix + route.path, set(route.methods or ())))
    return out


def console_post_routes(tmp_path: Path) -> list[str]:
    """Every ``/console`` path that takes a POST, as the gateway application routes them (logout last)."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}"))
    paths = sorted({p for p, methods in walk(list(app.routes)) if p.startswith("/console") and "POST" in methods})
    return sorted(paths, key=lambda p: p.endswith("/logout"))


def concrete(path: str) -> str:
    """A path with its parameters filled in with ids that exist nowhere (nothing is changed by accident)."""
    return PARAM.sub(lambda m: "999999" if m.group(2) == "int" else "khong-co-ma-nay", path)


async def signed_in(url: str, username: str) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(base_url=url)
    resp = await sign_in(client, username, CONSOLE_PASSWORD)
    assert resp.status_code == 303, resp.text
    page = await client.get("/console/home", follow_redirects=True)
    return client, csrf_of(page.text)


def session_cookie(resp: httpx.Response) -> str:
    return next(c for c in resp.headers.get_list("set-cookie") if c.startswith("dvcbot_console="))


async def test_every_console_post_route_needs_the_csrf_token_and_this_origin(console_desk: StaffDesk,
                                                                              tmp_path: Path) -> None:
    routes = console_post_routes(tmp_path)
    # the known forms are found (the list grows with the console; none may be missed by the walk)
    for known in ("/console/login", "/console/logout", "/console/tickets/{ticket:int}/reply",
                  "/console/tickets/{ticket:int}/transfer", "/console/staff", "/console/dossiers/status",
                  "/console/api/tickets/{ticket:int}/messages"):
        assert known in routes, routes
    url = console_desk.gw.url
    client, csrf = await signed_in(url, "ha")  # a supervisor may use every console page
    async with aclosing(client), httpx.AsyncClient(base_url=url) as anonymous:
        for path in routes:
            if path == "/console/login":
                continue  # the login form's own double-submit check: test_login_form_needs_its_double_submit_token
            target = concrete(path)
            resp = await anonymous.post(target, data={"csrf": csrf})
            assert resp.status_code in (303, 401), (path, resp.status_code)  # nobody signed in: nothing done
            attempts: list[tuple[dict[str, str], dict[str, str]]] = [
                ({}, {}),                                       # no token
                ({"csrf": "forged"}, {}),                       # a wrong token
                ({}, {"X-CSRF-Token": "forged"}),               # a wrong token the fetch() way
                ({"csrf": csrf}, {"Origin": "https://evil.example"}),  # the right token, from another site
                ({"csrf": csrf}, {"Origin": "null"}),
            ]
            for data, headers in attempts:
                resp = await client.post(target, data=data, headers=headers)
                assert resp.status_code == 403 and CSRF_REFUSED in resp.text, (path, data, headers, resp.status_code)
            # the right token passes the check (what the page then says about an empty form does not matter here)
            resp = await client.post(target, data={"csrf": csrf})
            assert resp.status_code < 500 and CSRF_REFUSED not in resp.text, (path, resp.status_code, resp.text[:300])


async def test_a_forged_staff_account_form_changes_nothing(console_desk: StaffDesk) -> None:
    client, csrf = await signed_in(console_desk.gw.url, "ha")
    form = {"username": "ke-gian", "display_name": "Kẻ gian", "role": "supervisor", "password": "mat-khau-ke-gian-1"}
    async with aclosing(client):
        resp = await client.post("/console/staff", data=form, headers={"Origin": "https://evil.example"})
        assert resp.status_code == 403
        resp = await client.post("/console/staff", data=form)
        assert resp.status_code == 403
        with Session(console_desk.gw.engine) as session:
            assert session.scalar(select(func.count()).where(StaffMember.username == "ke-gian")) == 0
        resp = await client.post("/console/staff", data={**form, "csrf": csrf})  # the genuine form works
        assert resp.status_code == 303
    with Session(console_desk.gw.engine) as session:
        assert session.scalar(select(func.count()).where(StaffMember.username == "ke-gian")) == 1


async def test_login_form_needs_its_double_submit_token(console_desk: StaffDesk) -> None:
    async with httpx.AsyncClient(base_url=console_desk.gw.url) as client:
        page = await client.get("/console/login")
        token = csrf_of(page.text)
        form = {"username": "ha", "password": CONSOLE_PASSWORD}
        assert (await client.post("/console/login", data=form)).status_code == 403
        assert (await client.post("/console/login", data={**form, "csrf": "forged"})).status_code == 403
        resp = await client.post("/console/login", data={**form, "csrf": token},
                                 headers={"Origin": "https://evil.example"})
        assert resp.status_code == 403
        assert (await client.post("/console/login", data={**form, "csrf": token})).status_code == 303


async def test_a_session_id_planted_before_login_is_not_adopted(console_desk: StaffDesk) -> None:
    url = console_desk.gw.url
    planted = "phien-do-ke-gian-dat-san-0123456789abcdefghijk"
    async with httpx.AsyncClient(base_url=url, cookies={"dvcbot_console": planted}) as victim:
        resp = await sign_in(victim, "lan", CONSOLE_PASSWORD)
        assert resp.status_code == 303
        issued = session_cookie(resp).split(";")[0].split("=", 1)[1]
        assert issued != planted and len(issued) >= 40
        victim.cookies.set("dvcbot_console", issued)
        assert (await victim.get("/console/")).status_code == 200
        # a second login (another account, same browser) gets another session id again
        resp = await sign_in(victim, "ha", CONSOLE_PASSWORD)
        assert session_cookie(resp).split(";")[0].split("=", 1)[1] not in (issued, planted)
    async with httpx.AsyncClient(base_url=url, cookies={"dvcbot_console": planted}) as attacker:
        resp = await attacker.get("/console/")
        assert resp.status_code == 303 and resp.headers["location"].startswith("/console/login")
        assert (await attacker.get("/console/api/queue")).status_code == 401
    with Session(console_desk.gw.engine) as session:
        stored = list(session.scalars(select(ConsoleSession.token_hash)))
    assert len(stored) == 2 and issued not in stored and planted not in stored  # only digests are kept


async def test_failed_logins_are_limited_per_address_across_accounts(console_desk: StaffDesk) -> None:
    async with httpx.AsyncClient(base_url=console_desk.gw.url) as client:
        # 3 failures per account lock that account; one address trying many accounts is stopped after 4 x 3
        for n in range(12):
            resp = await sign_in(client, f"doan-ten-{n}", "sai-mat-khau")
            assert resp.status_code == 401, (n, resp.status_code)
        resp = await sign_in(client, "ha", CONSOLE_PASSWORD)  # even the right password of an untouched account
        assert resp.status_code == 429 and "quá nhiều lần" in resp.text
        assert "dvcbot_console=" not in resp.headers.get("set-cookie", "")


async def test_cookie_flags(console_desk: StaffDesk) -> None:
    async with httpx.AsyncClient(base_url=console_desk.gw.url) as client:
        page = await client.get("/console/login")
        login_cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith("dvcbot_console_login="))
        for flag in ("HttpOnly", "SameSite=strict", "Path=/console/login", "Max-Age=3600"):
            assert flag in login_cookie, login_cookie
        resp = await sign_in(client, "lan", CONSOLE_PASSWORD)
        cookie = session_cookie(resp)
        for flag in ("HttpOnly", "SameSite=strict", "Path=/console", f"Max-Age={12 * 3600}"):
            assert flag in cookie, cookie
        assert "Domain=" not in cookie  # this host only
        assert any(c.startswith("dvcbot_console_login=") and "Max-Age=0" in c
                   for c in resp.headers.get_list("set-cookie"))  # the login form's token is dropped
        home = await client.get("/console/")
        resp = await client.post("/console/logout", data={"csrf": csrf_of(home.text)})
        cleared = session_cookie(resp)
        assert "Max-Age=0" in cleared and "Path=/console" in cleared
