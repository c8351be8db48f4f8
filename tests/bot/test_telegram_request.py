"""python-telegram-bot's requests on lanes, against the fake Bot API on loopback with the real PTB bot."""

from __future__ import annotations

import asyncio

import pytest
from telegram import Bot
from telegram.error import TimedOut

from bot.channels.telegram_request import LanesRequest
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.servers import serve


async def test_calls_share_at_most_one_connection_per_lane() -> None:
    fake = FakeTelegram(delay=0.1)
    with serve(fake.app()) as url:
        async with Bot(TOKEN, base_url=f"{url}/bot", request=LanesRequest(3)) as bot:
            sent = await asyncio.gather(*(bot.send_message(1000 + i, f"tin {i}") for i in range(9)))
            await bot.send_message(1000, "thêm")
    assert sorted(m.chat.id for m in sent) == [1000 + i for i in range(9)]
    assert len(fake.sent()) == 10
    assert len(fake.peers) == 3  # get_me at start and ten messages, on three kept connections


async def test_a_call_that_gets_no_lane_within_the_pool_timeout_times_out() -> None:
    fake = FakeTelegram()
    with serve(fake.app()) as url:
        request = LanesRequest(1, pool_timeout=0.2)
        async with Bot(TOKEN, base_url=f"{url}/bot", request=request) as bot:
            held = await request.lanes.acquire()
            with pytest.raises(TimedOut):
                await bot.send_message(1000, "chờ")
            request.lanes.release(held)
            await bot.send_message(1000, "được")
    assert [c.text for c in fake.sent()] == ["được"]
