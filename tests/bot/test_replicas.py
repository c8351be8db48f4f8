"""Two gateway replicas sharing PostgreSQL and Redis keep one conversation's messages in order."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as redis

from bot.app import create_app
from bot.locks import RedisLocks
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from tests.db import _pg_database
from tests.fakes.rasa import FakeRasa
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
