"""Two gateway replicas sharing PostgreSQL and Redis keep one conversation's messages in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from bot.app import create_app
from bot.channels.telegram_limits import TelegramLimits
from bot.locks import RedisLocks
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from tests.bot.helpers import TELEGRAM_SECRET, channel_settings, eventually
from tests.bot.test_restart import GatewayProcess
from tests.db import _pg_database
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram, text_update
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def pg_url(postgres_server_url: str) -> Iterator[str]:
    yield from _pg_database(postgres_server_url)


async def test_redis_lock_serialises_holders(redis_url: str) -> None:
    client = redis.from_url(redis_url)
    await client.ping()
    locks_a, locks_b = RedisLocks(client), RedisLocks(client)  # as if in two processes
    inside: list[str] = []
    overlaps = 0

    async def work(locks: RedisLocks, name: str) -> None:
        nonlocal overlaps
        async with locks.hold("webchat:same"):
            if inside:
                overlaps += 1
            inside.append(name)
            await asyncio.sleep(0.02)
            inside.remove(name)

    await asyncio.gather(*[work(locks_a if i % 2 else locks_b, f"w{i}") for i in range(20)])
    assert overlaps == 0
    assert await client.exists("dvcbot:conv:webchat:same") == 0
    await client.aclose()


async def test_two_replicas_one_conversation(pg_url: str, redis_url: str) -> None:
    engine = make_engine(pg_url)
    create_schema(engine)
    engine.dispose()
    fake = FakeRasa(delay=0.03)
    rasa_port = free_port()
    base = dict(database_url=pg_url, rasa_port=rasa_port, rasa_token="t", redis_url=redis_url,
                actions_port=free_port())
    with serve(fake.app(), rasa_port), serve(create_app(Settings(**base))) as one, \
            serve(create_app(Settings(**base))) as two:
        async with httpx.AsyncClient(base_url=one, timeout=60) as c1, \
                httpx.AsyncClient(base_url=two, timeout=60) as c2:
            token = (await c1.post("/api/webchat/sessions")).json()["session"]
            auth = {"Authorization": f"Bearer {token}"}
            results = await asyncio.gather(*[
                (c1 if i % 2 else c2).post("/api/webchat/messages", json={"text": f"m{i}"}, headers=auth)
                for i in range(12)])
            assert [r.status_code for r in results] == [200] * 12
            history = (await c2.get("/api/webchat/messages", headers=auth)).json()["messages"]
    (sender,) = fake.max_in_flight
    assert fake.max_in_flight[sender] == 1
    assert [m["text"] for m in history] == [f"echo: {b['message']}" for b in fake.received]
    assert sorted(m["text"] for m in history) == sorted(f"echo: m{i}" for i in range(12))


async def test_two_replicas_one_telegram_chat(pg_url: str, redis_url: str) -> None:
    """Webhooks of one chat land on either replica; both send from the shared outbox: once each, in order."""
    engine = make_engine(pg_url)
    create_schema(engine)
    engine.dispose()
    rasa, telegram, zalo = FakeRasa(delay=0.02), FakeTelegram(), FakeZalo()
    rasa_port = free_port()
    limits = {"per_chat": (100, 1.0)}
    with serve(rasa.app(), rasa_port), serve(telegram.app()) as tg_url, serve(zalo.app()) as zalo_url:
        settings = channel_settings(pg_url, rasa_port, tg_url, zalo, zalo_url, redis_url=redis_url)
        with serve(create_app(settings, telegram_limits=TelegramLimits(**limits))) as one, \
                serve(create_app(settings, telegram_limits=TelegramLimits(**limits))) as two:
            async with httpx.AsyncClient(timeout=30) as client:
                headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
                for i in range(20):
                    resp = await client.post(f"{(one, two)[i % 2]}/webhooks/telegram",
                                             json=text_update(700 + i, 9301, f"m{i}"), headers=headers)
                    assert resp.status_code == 200
                await eventually(lambda: len(telegram.sent(9301)) == 20, within=60, what="20 replies")
                await asyncio.sleep(1.0)
    assert rasa.messages("telegram:9301") == [f"m{i}" for i in range(20)]
    assert telegram.texts(9301) == [f"echo: m{i}" for i in range(20)]


# --- leases: a dead replica's lock lapses within seconds, a live one keeps it through a slow call -------------


async def test_a_dead_holders_lock_is_taken_over_after_the_short_lease(redis_url: str) -> None:
    from bot.locks import LEASE_SECONDS

    assert LEASE_SECONDS <= 15  # was 120 s: the recovery time after a gateway is killed
    client = redis.from_url(redis_url)
    # what a replica killed mid-work leaves behind: its lease, which nobody renews any more
    await client.set("dvcbot:conv:webchat:dead", "token-of-a-dead-replica", px=1500)
    started = asyncio.get_running_loop().time()
    async with RedisLocks(client, ttl=1.5).hold("webchat:dead"):
        waited = asyncio.get_running_loop().time() - started
    assert 1.0 < waited < 3.0
    assert await client.exists("dvcbot:conv:webchat:dead") == 0
    await client.aclose()


async def test_a_slow_live_holder_keeps_its_lock_past_the_lease(redis_url: str) -> None:
    client = redis.from_url(redis_url)
    slow, other = RedisLocks(client, ttl=1.0), RedisLocks(client, ttl=1.0)  # two replicas
    events: list[str] = []

    async def slow_call() -> None:
        async with slow.hold("webchat:slow"):
            events.append("slow in")
            await asyncio.sleep(3.5)  # a Rasa call much longer than the lease
            events.append("slow out")

    async def second() -> None:
        await asyncio.sleep(0.2)
        async with other.hold("webchat:slow"):
            events.append("other in")

    await asyncio.gather(slow_call(), second())
    assert events == ["slow in", "slow out", "other in"]
    await client.aclose()


async def test_a_holder_whose_lock_was_taken_is_stopped(redis_url: str) -> None:
    client = redis.from_url(redis_url)
    locks = RedisLocks(client, ttl=0.9)
    entered = asyncio.Event()

    async def work() -> None:
        async with locks.hold("webchat:stolen"):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await entered.wait()
    await client.set("dvcbot:conv:webchat:stolen", "another-replica", px=5000)  # e.g. it stalled past its lease
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 3)
    assert await client.get("dvcbot:conv:webchat:stolen") == b"another-replica"  # not released by the loser
    await client.delete("dvcbot:conv:webchat:stolen")
    await client.aclose()


async def test_a_holder_takes_its_lock_again_when_redis_forgot_it(redis_url: str) -> None:
    client = redis.from_url(redis_url)
    locks = RedisLocks(client, ttl=0.9)
    async with locks.hold("webchat:forgotten"):
        await client.delete("dvcbot:conv:webchat:forgotten")  # Redis restarted empty
        await asyncio.sleep(0.6)  # one renewal
        assert await client.exists("dvcbot:conv:webchat:forgotten") == 1
        await asyncio.sleep(1.0)  # still working, still holding it
    assert await client.exists("dvcbot:conv:webchat:forgotten") == 0
    await client.aclose()


async def test_a_renewal_that_swallows_its_cancellation_does_not_keep_the_lock(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py's asyncio client (8.1) can swallow a cancellation that lands inside a command. The lock's renewal
    used to be stopped by cancelling it: when that landed inside ``reacquire``, the renewal went on for ever, the
    holder waited for it for ever, and its conversation's updates stayed pending (found by ``make bench``)."""
    from redis.asyncio.lock import Lock

    original = Lock.reacquire
    in_flight = asyncio.Event()

    async def reacquire_swallowing_cancel(self: Lock) -> bool:
        in_flight.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            pass  # what the client does in some windows
        return await original(self)

    monkeypatch.setattr(Lock, "reacquire", reacquire_swallowing_cancel)
    client = redis.from_url(redis_url)
    locks = RedisLocks(client, ttl=0.3)

    async def work() -> None:
        async with locks.hold("webchat:swallowed"):
            await in_flight.wait()  # leave while a renewal is in flight

    await asyncio.wait_for(work(), 3)
    assert await client.exists("dvcbot:conv:webchat:swallowed") == 0
    await asyncio.sleep(0.5)  # and nothing takes it again afterwards
    assert await client.exists("dvcbot:conv:webchat:swallowed") == 0
    await client.aclose()


async def test_a_killed_replicas_conversation_is_answered_by_the_other_within_seconds(
        pg_url: str, redis_url: str, tmp_path: Path) -> None:
    """Two gateway processes; the one working on a conversation is killed mid-call: the other answers it once the
    dead one's lock lapses (15 s, plus the intake's sweep), not after the 120 s it used to take."""
    engine = make_engine(pg_url)
    create_schema(engine)
    engine.dispose()
    rasa, telegram = FakeRasa(delay=4.0), FakeTelegram()
    rasa_port = free_port()
    with serve(rasa.app(), rasa_port), serve(telegram.app()) as telegram_url:
        one, two = (GatewayProcess(pg_url, rasa_port, telegram_url, tmp_path / f"gateway-{n}.log") for n in (1, 2))
        try:
            for gateway in (one, two):
                gateway.env["DVCBOT_REDIS_URL"] = redis_url
                gateway.start()
            assert one.post(text_update(880, 9401, "q0")).status_code == 200
            await eventually(lambda: len(rasa.received) == 1, what="Rasa asked by the first replica")
            one.kill()  # while Rasa is thinking: its conversation lock stays in Redis, unrenewed
            killed = time.monotonic()
            rasa.delay = 0.0
            await eventually(lambda: len(telegram.sent(9401)) == 1, within=45, what="the other replica's answer")
            took = time.monotonic() - killed
            await asyncio.sleep(1.0)
        finally:
            one.stop()
            two.stop()
    assert telegram.texts(9401) == ["echo: q0"]  # once
    assert rasa.messages("telegram:9401") == ["q0", "q0"]  # the dead replica's call, then the other's
    assert 10 < took < 30, took
