"""The gateway's Rasa client against a fake Rasa server on loopback: how many messages it keeps at Rasa at once."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.rasa_client import RasaClient, RasaUnavailable
from tests.fakes.rasa import FakeRasa
from tests.servers import serve


async def test_at_most_max_in_flight_messages_are_at_rasa_at_once() -> None:
    rasa = FakeRasa(delay=0.2)
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http:
            client = RasaClient(url, None, 10.0, http, max_in_flight=3)
            answers = await asyncio.gather(*(client.send(f"webchat:{i}", f"xin chào {i}") for i in range(9)))
    assert [a[0]["text"] for a in answers] == [f"echo: xin chào {i}" for i in range(9)]  # every one answered
    assert rasa.max_total_in_flight == 3


async def test_a_message_that_gets_no_turn_in_time_is_a_timeout() -> None:
    rasa = FakeRasa()
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http:
            client = RasaClient(url, None, 0.3, http, max_in_flight=1)
            await client._turns.acquire()  # one message is at Rasa for longer than the timeout
            started = asyncio.get_running_loop().time()
            with pytest.raises(RasaUnavailable) as waited:
                await client.send("webchat:b", "hai")
            assert waited.value.kind == "timeout"
            assert 0.25 < asyncio.get_running_loop().time() - started < 2.0
            client._turns.release()
            assert (await client.send("webchat:c", "ba"))[0]["text"] == "echo: ba"
    assert rasa.messages("webchat:b") == []  # it never reached Rasa
    assert rasa.messages("webchat:c") == ["ba"]
