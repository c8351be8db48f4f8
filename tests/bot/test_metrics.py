"""``GET /metrics`` of the gateway: real messages through the web chat and Telegram (fakes on loopback), then a
scrape parsed with prometheus_client's own parser; on SQLite and PostgreSQL.

The counters belong to the test process and earlier tests add to them too, so every check is a difference
between two scrapes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.models import Conversation, InboundUpdate, OutboxEntry, Ticket, utcnow
from dvcbot.settings import Settings
from tests.bot.handoff_helpers import LAN, StaffDesk, add_staff, handoff_gateway
from tests.bot.helpers import Channels, eventually
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram, group_callback_update, group_text_update, text_update
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(client: httpx.AsyncClient, url: str, **headers: str) -> Samples:
    resp = await client.get(f"{url}/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_web_chat_messages_are_counted(channels: Channels) -> None:
    async with httpx.AsyncClient(base_url=channels.url) as client:
        before = await scrape(client, channels.url)
        auth = {"Authorization": f"Bearer {(await client.post('/api/webchat/sessions')).json()['session']}"}
        for text in ("xin chào", "số tôi 0912345678"):
            resp = await client.post("/api/webchat/messages", json={"text": text}, headers=auth)
            assert resp.status_code == 200
        retry = {"text": "làm căn cước", "client_id": "c-1"}
        assert (await client.post("/api/webchat/messages", json=retry, headers=auth)).status_code == 200
        assert (await client.post("/api/webchat/messages", json=retry, headers=auth)).status_code == 200
        assert (await client.post("/api/webchat/messages", json={"text": "x"})).status_code == 401
        assert (await client.post("/api/webchat/messages", json={"text": "x" * 501}, headers=auth)).status_code == 413
        raw = (await client.get("/metrics")).text
        after = parse(raw)
    assert delta(before, after, "dvcbot_messages_in_total", channel="webchat") == 3
    assert delta(before, after, "dvcbot_webhook_duplicates_total", channel="webchat") == 1
    # each echo is one visible reply (the custom payload beside it is not shown)
    assert delta(before, after, "dvcbot_messages_out_total", channel="webchat") == 3
    assert delta(before, after, "dvcbot_reply_seconds_count", channel="webchat") == 3
    assert 0 < delta(before, after, "dvcbot_reply_seconds_sum", channel="webchat") < 10
    assert delta(before, after, "dvcbot_rasa_request_seconds_count") == 3
    assert delta(before, after, "dvcbot_webhook_refused_total", channel="webchat", status="401") == 1
    assert delta(before, after, "dvcbot_webhook_refused_total", channel="webchat", status="413") == 1
    assert value(after, "dvcbot_database_up") == 1
    assert value(after, "dvcbot_intake_pending") == 0
    assert "912345678" not in raw and "xin chào" not in raw  # no text, no number ever becomes a label


async def test_rasa_failures_are_counted_by_kind(channels: Channels) -> None:
    fake = channels.rasa
    async with httpx.AsyncClient(base_url=channels.url) as client:
        auth = {"Authorization": f"Bearer {(await client.post('/api/webchat/sessions')).json()['session']}"}
        before = await scrape(client, channels.url)
        for mode, delay in (("error", 0.0), ("empty", 0.0), ("echo", 2.3)):  # 2.3 s: over the 2 s timeout
            fake.mode, fake.delay = mode, delay
            resp = await client.post("/api/webchat/messages", json={"text": f"thử {mode}"}, headers=auth)
            assert resp.status_code == 200 and resp.json()["messages"]  # the polite "unavailable" answer
        after = await scrape(client, channels.url)
    for kind in ("http_error", "empty_reply", "timeout"):
        assert delta(before, after, "dvcbot_rasa_errors_total", kind=kind) == 1, kind
    assert delta(before, after, "dvcbot_rasa_errors_total", kind="unavailable") == 0
    assert delta(before, after, "dvcbot_rasa_request_seconds_count") == 3
    assert delta(before, after, "dvcbot_rasa_request_seconds_sum") >= 2


async def test_telegram_messages_sends_and_refusals(channels: Channels) -> None:
    async with httpx.AsyncClient() as client:
        before = await scrape(client, channels.url)
        update = text_update(501, 7501, "xin chào")
        assert (await channels.telegram_update(client, update)).json()["update"] == "stored"
        assert (await channels.telegram_update(client, update)).json()["update"] == "duplicate"
        assert (await channels.telegram_update(client, text_update(502, 7501, "x"), secret="wrong")).status_code == 401
        await eventually(lambda: channels.statuses() == {"sent": 1}, what="the reply sent")
        after = await scrape(client, channels.url)
    assert delta(before, after, "dvcbot_messages_in_total", channel="telegram") == 1
    assert delta(before, after, "dvcbot_webhook_duplicates_total", channel="telegram") == 1
    assert delta(before, after, "dvcbot_webhook_refused_total", channel="telegram", status="401") == 1
    assert delta(before, after, "dvcbot_outbox_sends_total", channel="telegram", outcome="sent") == 1
    assert delta(before, after, "dvcbot_messages_out_total", channel="telegram") == 1
    # end to end: stored -> accepted by the (fake) Bot API
    assert delta(before, after, "dvcbot_reply_seconds_count", channel="telegram") == 1
    assert value(after, "dvcbot_outbox_pending", channel="telegram") == 0


async def test_a_failing_platform_shows_as_retries_and_backlog(channels: Channels) -> None:
    from tests.fakes.telegram import Failure

    channels.telegram.fail = lambda method, params: Failure(500)
    async with httpx.AsyncClient() as client:
        before = await scrape(client, channels.url)
        await channels.telegram_update(client, text_update(601, 7601, "có ai không"))
        await eventually(lambda: len(channels.telegram.attempts()) >= 1, what="a refused attempt")
        await asyncio.sleep(0.2)
        after = await scrape(client, channels.url)
    assert delta(before, after, "dvcbot_outbox_sends_total", channel="telegram", outcome="retry") >= 1
    assert delta(before, after, "dvcbot_outbox_sends_total", channel="telegram", outcome="sent") == 0
    assert value(after, "dvcbot_outbox_pending", channel="telegram") == 1
    assert delta(before, after, "dvcbot_reply_seconds_count", channel="telegram") == 0


async def test_stuck_work_shows_in_the_gauges(channels: Channels) -> None:
    now = utcnow()
    with Session(channels.engine) as session:
        conv = Conversation(key="zalo:u-stuck", channel="zalo")
        session.add(conv)
        session.flush()
        for i in range(3):  # a backlog held back (not due for an hour), the oldest queued 2 minutes ago
            session.add(OutboxEntry(channel="zalo", conversation_id=conv.id, recipient="u-stuck", body={"i": i},
                                    created_at=now - dt.timedelta(seconds=120 - i),
                                    not_before=now + dt.timedelta(hours=1)))
        session.add(OutboxEntry(channel="zalo", conversation_id=conv.id, recipient="u-stuck", body={}, status="sent"))
        session.add(Ticket(conversation_id=conv.id, reason="human_handoff", channel="zalo", display_name="An",
                           opened_at=now - dt.timedelta(minutes=10)))
        session.add(Ticket(conversation_id=conv.id, reason="complaint", channel="zalo", display_name="An",
                           status="closed", opened_at=now - dt.timedelta(hours=5)))
        session.add(InboundUpdate(channel="zalo", platform_id="failed-1", conversation_key="zalo:u-x", message={},
                                  status="failed"))
        session.commit()
    channels.rasa.delay = 1.5  # the next update stays unprocessed while Rasa thinks
    async with httpx.AsyncClient() as client:
        assert (await channels.telegram_update(client, text_update(701, 7701, "chậm"))).status_code == 200
        samples = await scrape(client, channels.url)
    assert value(samples, "dvcbot_outbox_pending", channel="zalo") == 3
    assert 119 <= value(samples, "dvcbot_outbox_oldest_pending_seconds", channel="zalo") < 180
    assert value(samples, "dvcbot_outbox_pending", channel="telegram") == 0
    assert value(samples, "dvcbot_handoff_tickets", status="waiting") == 1
    assert value(samples, "dvcbot_handoff_tickets", status="claimed") == 0
    assert 600 <= value(samples, "dvcbot_handoff_oldest_waiting_seconds") < 700
    assert value(samples, "dvcbot_intake_pending") == 1
    assert value(samples, "dvcbot_intake_failed") == 1


@pytest.fixture
def desk(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],
         fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[StaffDesk]:
    add_staff(engine, "lan", "Chị Lan", LAN)  # one staff member is enough here
    yield from handoff_gateway(database_url, engine, fake_rasa, fake_telegram, fake_zalo)


async def test_handoff_wait_is_observed_at_the_first_claim_only(desk: StaffDesk) -> None:
    tg = desk.telegram
    async with httpx.AsyncClient() as client:
        before = await scrape(client, desk.gw.url)
        await desk.post(client, text_update(801, 7801, "gặp nhân viên"))
        summary = await desk.summary(1)
        thread = tg.topic_named("#1 ")
        waiting = await scrape(client, desk.gw.url)
        assert value(waiting, "dvcbot_handoff_tickets", status="waiting") == 1
        await desk.post(client, group_callback_update(802, LAN, summary, "Nhận xử lý"))
        await eventually(lambda: any("Chị Lan" in t for t in tg.texts(7801)), what="the citizen told")
        await desk.post(client, group_text_update(803, LAN, thread, "/chuyen"))  # back to the queue ...
        await eventually(lambda: any((c.text or "").startswith("↪️") for c in tg.in_topic(thread)), what="requeue")
        requeued = next(c for c in tg.in_topic(thread) if (c.text or "").startswith("↪️"))
        await desk.post(client, group_callback_update(804, LAN, requeued, "Nhận xử lý"))  # ... and claimed again
        await eventually(lambda: sum("Chị Lan" in t for t in tg.texts(7801)) >= 2, what="claimed again")
        after = await scrape(client, desk.gw.url)
    assert delta(before, after, "dvcbot_handoff_wait_seconds_count") == 1
    assert 0 < delta(before, after, "dvcbot_handoff_wait_seconds_sum") < 30
    assert value(after, "dvcbot_handoff_tickets", status="claimed") == 1
    assert value(after, "dvcbot_handoff_tickets", status="waiting") == 0
    assert value(after, "dvcbot_handoff_oldest_waiting_seconds") == 0
    # the staff group's updates come through Telegram's webhook but are counted apart from citizens'
    assert delta(before, after, "dvcbot_messages_in_total", channel="tgstaff") == 3
    assert delta(before, after, "dvcbot_messages_in_total", channel="telegram") == 1


async def test_a_metrics_token_is_required_when_set(database_url: str, engine: Engine,
                                                    fake_rasa: tuple[FakeRasa, int]) -> None:
    settings = Settings(database_url=database_url, rasa_port=fake_rasa[1], rasa_token="test-token",
                        actions_port=free_port(), metrics_token="scrape-me")
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient() as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
                resp = await client.get(f"{url}/metrics", headers=headers)
                assert resp.status_code == 401 and "dvcbot" not in resp.text
            samples = await scrape(client, url, Authorization="Bearer scrape-me")
    assert value(samples, "dvcbot_database_up") == 1
