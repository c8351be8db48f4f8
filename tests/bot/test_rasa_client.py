"""The gateway's Rasa client against a fake Rasa server on loopback: how many messages it keeps at Rasa at once,
and on how many connections."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.http_lanes import HttpLanes
from bot.rasa_client import RasaClient, RasaUnavailable
from tests.fakes.rasa import FakeRasa
from tests.servers import serve


async def test_at_most_one_message_per_lane_is_at_rasa_each_on_the_lanes_kept_connection() -> None:
    rasa = FakeRasa(delay=0.2)
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http, HttpLanes(3) as lanes:
            client = RasaClient(url, None, 10.0, lanes, http)
            answers = await asyncio.gather(*(client.send(f"webchat:{i}", f"xin chào {i}") for i in range(9)))
            again = await asyncio.gather(*(client.send(f"webchat:{i}", "nữa") for i in range(3)))
    assert [a[0]["text"] for a in answers] == [f"echo: xin chào {i}" for i in range(9)]  # every one answered
    assert [a[0]["text"] for a in again] == ["echo: nữa"] * 3
    assert rasa.max_total_in_flight == 3
    assert len(rasa.peers) == 3  # 12 messages, three connections: each lane kept its own


async def test_a_quiet_gateway_keeps_using_the_lane_it_used_last() -> None:
    rasa = FakeRasa()
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http, HttpLanes(4) as lanes:
            client = RasaClient(url, None, 10.0, lanes, http)
            for i in range(5):
                await client.send("webchat:a", f"tin {i}")
    assert len(rasa.peers) == 1


async def test_a_message_that_gets_no_lane_in_time_is_a_timeout() -> None:
    rasa = FakeRasa()
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http, HttpLanes(1) as lanes:
            client = RasaClient(url, None, 0.3, lanes, http)
            held = await lanes.acquire()  # one message is at Rasa for longer than the timeout
            started = asyncio.get_running_loop().time()
            with pytest.raises(RasaUnavailable) as waited:
                await client.send("webchat:b", "hai")
            assert waited.value.kind == "timeout"
            assert 0.25 < asyncio.get_running_loop().time() - started < 2.0
            lanes.release(held)
            assert (await client.send("webchat:c", "ba"))[0]["text"] == "echo: ba"
            assert lanes.busy == 0
    assert rasa.messages("webchat:b") == []  # it never reached Rasa
    assert rasa.messages("webchat:c") == ["ba"]


async def test_the_wait_for_a_lane_counts_toward_the_timeout() -> None:
    rasa = FakeRasa(delay=0.4)
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http, HttpLanes(1) as lanes:
            client = RasaClient(url, None, 0.6, lanes, http)
            first, second = await asyncio.gather(client.send("webchat:a", "một"), client.send("webchat:b", "hai"),
                                                 return_exceptions=True)
    assert isinstance(first, list)
    # the second waited 0.4 s for the lane, so 0.2 s were left for a call that takes 0.4 s
    assert isinstance(second, RasaUnavailable) and second.kind == "timeout"


async def test_status_does_not_wait_for_a_lane() -> None:
    rasa = FakeRasa()
    with serve(rasa.app()) as url:
        async with httpx.AsyncClient() as http, HttpLanes(1) as lanes:
            client = RasaClient(url, "test-token", 0.3, lanes, http)
            held = await lanes.acquire()
            assert (await client.status())["model_file"] == "models/fake.tar.gz"
            lanes.release(held)
