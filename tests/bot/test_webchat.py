"""The web chat API and the router behind it, against a fake Rasa server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.models import Message
from dvcbot.settings import Settings
from tests.fakes.rasa import FakeRasa
from tests.servers import free_port, serve


@pytest.fixture
def gateway(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int]) -> Iterator[str]:
    _, rasa_port = fake_rasa
    settings = Settings(database_url=database_url, rasa_port=rasa_port, rasa_token="test-token",
                        actions_port=free_port(), rasa_timeout=2.0, webchat_max_chars=500)
    with serve(create_app(settings)) as url:
        yield url


async def new_session(client: httpx.AsyncClient) -> dict[str, str]:
    resp = await client.post("/api/webchat/sessions")
    assert resp.status_code == 201
    return {"Authorization": f"Bearer {resp.json()['session']}"}


async def test_message_round_trip_is_stored(gateway: str, engine: Engine, fake_rasa: tuple[FakeRasa, int]) -> None:
    fake, _ = fake_rasa
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        resp = await client.post("/api/webchat/messages", json={"text": "  xin chào  "}, headers=auth)
        assert resp.status_code == 200
        data = resp.json()
        assert [m["text"] for m in data["messages"]] == ["echo: xin chào"]
        assert data["messages"][0]["buttons"] == [{"title": "Lệ phí", "payload": "/procedure_fee"}]
    (sent,) = fake.received
    assert sent["sender"].startswith("webchat:") and sent["metadata"]["channel"] == "webchat"
    with Session(engine) as session:
        rows = session.scalars(select(Message).order_by(Message.id)).all()
        assert [(r.direction, r.sender, r.text) for r in rows] == [
            ("in", "citizen", "xin chào"), ("out", "bot", "echo: xin chào"), ("out", "bot", None)]


async def test_button_press_sends_payload_and_records_title(gateway: str, engine: Engine,
                                                             fake_rasa: tuple[FakeRasa, int]) -> None:
    fake, _ = fake_rasa
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        resp = await client.post("/api/webchat/messages", json={"payload": "/procedure_fee", "text": "Lệ phí"},
                                 headers=auth)
        assert resp.status_code == 200
    assert fake.received[0]["message"] == "/procedure_fee"
    with Session(engine) as session:
        first = session.scalars(select(Message).order_by(Message.id)).first()
        assert first is not None and first.text == "Lệ phí"


async def test_shared_location_asks_for_post_offices(gateway: str, engine: Engine,
                                                     fake_rasa: tuple[FakeRasa, int]) -> None:
    fake, _ = fake_rasa
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        resp = await client.post("/api/webchat/messages", json={"location": {"lat": 21.0245, "lon": 105.853}},
                                 headers=auth)
        assert resp.status_code == 200
        for bad in ({"lat": 91, "lon": 0}, {"lat": "21", "lon": 105}, [21, 105], {"lat": True, "lon": 1}):
            resp = await client.post("/api/webchat/messages", json={"location": bad}, headers=auth)
            assert resp.status_code == 400 and "location must be" in resp.json()["error"]
    (sent,) = fake.received
    assert sent["message"] == "/post_office_find"
    assert sent["metadata"]["location"] == {"lat": 21.0245, "lon": 105.853}
    with Session(engine) as session:
        first = session.scalars(select(Message).order_by(Message.id)).first()
        assert first is not None and first.text == "📍 21.02450, 105.85300"


async def test_history_after_cursor(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        first = (await client.post("/api/webchat/messages", json={"text": "một"}, headers=auth)).json()
        await client.post("/api/webchat/messages", json={"text": "hai"}, headers=auth)
        later = (await client.get(f"/api/webchat/messages?after={first['cursor']}", headers=auth)).json()
        assert [m["text"] for m in later["messages"]] == ["echo: hai"]
        everything = (await client.get("/api/webchat/messages", headers=auth)).json()
        assert [m["text"] for m in everything["messages"]] == ["echo: một", "echo: hai"]
        none = (await client.get(f"/api/webchat/messages?after={everything['cursor']}", headers=auth)).json()
        assert none["messages"] == [] and none["cursor"] == everything["cursor"]
        other = await new_session(client)
        assert (await client.get("/api/webchat/messages", headers=other)).json()["messages"] == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({}, {"text": "x"}, 401, "missing or unknown session"),
        ({"Authorization": "Bearer nope"}, {"text": "x"}, 401, "missing or unknown session"),
        (None, {"text": "   "}, 400, "text is empty"),
        (None, {"text": 42}, 400, "text must be a string"),
        (None, ["text"], 400, "body must be a JSON object"),
        (None, {"text": "a" * 501}, 413, "text longer than 500 characters"),
        (None, {"payload": "procedure_fee"}, 400, "payload must be a button payload starting with '/'"),
        (None, {"text": "x", "client_id": ""}, 400, "client_id must be a string of 1 to 100 characters"),
    ],
)
async def test_bad_requests_get_a_reason(gateway: str, headers: dict[str, str] | None, body: object, status: int,
                                         reason: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = headers if headers is not None else await new_session(client)
        resp = await client.post("/api/webchat/messages", json=body, headers=auth)
        assert (resp.status_code, resp.json()) == (status, {"error": reason})


async def test_non_json_and_huge_bodies(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        resp = await client.post("/api/webchat/messages", content=b"\xff\xfe not json", headers=auth)
        assert (resp.status_code, resp.json()["error"]) == (400, "body must be JSON")
        resp = await client.post("/api/webchat/messages", content=b"x" * 1_000_000,
                                 headers={**auth, "Content-Type": "application/json"})
        assert resp.status_code == 413
        resp = await client.get("/api/webchat/messages?after=-1", headers=auth)
        assert resp.status_code == 400


async def test_same_client_id_is_processed_once(gateway: str, fake_rasa: tuple[FakeRasa, int]) -> None:
    fake, _ = fake_rasa
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        body = {"text": "hỏi một lần", "client_id": "m-1"}
        one = (await client.post("/api/webchat/messages", json=body, headers=auth)).json()
        two = (await client.post("/api/webchat/messages", json=body, headers=auth)).json()
    assert one == two
    assert len(fake.received) == 1


@pytest.mark.parametrize("mode", ["error", "empty"])
async def test_rasa_failure_gets_a_polite_answer(gateway: str, fake_rasa: tuple[FakeRasa, int], mode: str) -> None:
    fake, _ = fake_rasa
    fake.mode = mode
    async with httpx.AsyncClient(base_url=gateway) as client:
        auth = await new_session(client)
        data = (await client.post("/api/webchat/messages", json={"text": "alo"}, headers=auth)).json()
    (msg,) = data["messages"]
    assert "tạm gián đoạn" in msg["text"]
    assert {"title": "Gặp nhân viên", "payload": "/human_handoff"} in msg["buttons"]


async def test_slow_rasa_times_out_politely(gateway: str, fake_rasa: tuple[FakeRasa, int]) -> None:
    fake, _ = fake_rasa
    fake.delay = 3.0  # the gateway waits 2 s
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
        auth = await new_session(client)
        data = (await client.post("/api/webchat/messages", json={"text": "alo"}, headers=auth)).json()
    assert "tạm gián đoạn" in data["messages"][0]["text"]


async def test_one_conversation_is_handled_in_order(gateway: str, fake_rasa: tuple[FakeRasa, int]) -> None:
    fake, _ = fake_rasa
    fake.delay = 0.05
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        auth = await new_session(client)
        results = await asyncio.gather(*[
            client.post("/api/webchat/messages", json={"text": f"m{i}"}, headers=auth) for i in range(8)])
        assert all(r.status_code == 200 for r in results)
        history = (await client.get("/api/webchat/messages", headers=auth)).json()["messages"]
    # Rasa saw one message at a time, and each reply follows its own question in the transcript.
    assert [m["text"] for m in history] == [f"echo: {b['message']}" for b in fake.received]


async def test_healthz_reports_each_part(gateway: str, fake_rasa: tuple[FakeRasa, int]) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        resp = await client.get("/healthz")
    assert resp.status_code == 503
    data = resp.json()
    assert data["status"] == "degraded"
    assert data["database"] == {"status": "up"}
    assert data["rasa"] == {"status": "up", "model": "fake.tar.gz"}
    assert data["actions"]["status"] == "down"


async def test_page_is_served(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        page = await client.get("/")
        script = await client.get("/static/chat.js")
    assert page.status_code == 200 and "Trợ lý dịch vụ công" in page.text
    assert 'name="viewport"' in page.text
    assert script.status_code == 200 and "/api/webchat/messages" in script.text


async def test_the_answers_a_post_returns_are_the_ones_stored(database_url: str, engine: Engine,
                                                              fake_rasa: tuple[FakeRasa, int]) -> None:
    """The gateway hands a web chat request the replies it just committed without reading them back: they must be
    what the database holds (the history read gives them from there), and nothing is kept afterwards."""
    _, rasa_port = fake_rasa
    settings = Settings(database_url=database_url, rasa_port=rasa_port, rasa_token="test-token",
                        actions_port=free_port(), rasa_timeout=2.0, webchat_max_chars=500)
    app = create_app(settings)
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            auth = await new_session(client)
            posted, cursor = [], 0
            for text in ["một", "hai", "/procedure_fee"]:
                resp = await client.post("/api/webchat/messages", json={"text": text, "client_id": text},
                                         headers=auth)
                assert resp.status_code == 200
                posted += resp.json()["messages"]
                cursor = resp.json()["cursor"]
            again = await client.post("/api/webchat/messages", json={"text": "hai", "client_id": "hai"},
                                      headers=auth)  # a retry: answered before, read from the database
            history = (await client.get("/api/webchat/messages", params={"after": 0}, headers=auth)).json()
        assert app.state.router._awaited == {}
    assert [m["text"] for m in posted] == ["echo: một", "echo: hai", "echo: /procedure_fee"]
    assert posted == history["messages"] and cursor == history["cursor"]
    assert again.json()["messages"] == [posted[1]]
