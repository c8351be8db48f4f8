"""The external status API source against a fake API of our own on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from actions.dossiers.api_source import ApiSource
from actions.dossiers.breaker import CircuitBreaker
from actions.dossiers.settings import DossierSettings
from actions.dossiers.sources import SourceUnavailable
from tests.servers import serve

CODE = "000.00.04.H51-200221-0001"
RECORD = {
    "code": CODE, "procedure_name": "Đăng ký khai sinh", "received_on": "2026-11-02", "due_on": "2026-11-03",
    "status": "sent_by_post", "delivery": "post", "shipment_code": "EI261118012VN", "shipment_status": "in_transit",
}


@dataclass
class FakeApi:
    """Answers from ``script`` in turn (the last one repeats): a status code, ``"slow"`` or ``"ok"``."""

    script: list[str] = field(default_factory=lambda: ["ok"])
    body: dict[str, Any] = field(default_factory=lambda: dict(RECORD))
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def verify(self, request: Request) -> Response:
        payload = await request.json()
        self.calls.append({"json": payload, "auth": request.headers.get("authorization")})
        step = self.script[min(len(self.calls), len(self.script)) - 1]
        if step == "slow":
            await asyncio.sleep(1.0)
            step = "ok"
        if step != "ok":
            return JSONResponse({"error": step}, status_code=int(step))
        if payload != {"code": CODE, "phone_last4": "4567"}:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(self.body)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/dossiers/verify", self.verify, methods=["POST"])])


@pytest.fixture
def api() -> Iterator[tuple[FakeApi, str]]:
    fake = FakeApi()
    with serve(fake.app()) as url:
        yield fake, url


def source(url: str, **values: Any) -> ApiSource:
    defaults: dict[str, Any] = {"api_url": url, "api_token": SecretStr("t0ken"), "api_timeout": 0.3,
                                "api_retries": 2, "api_backoff": 0.01}
    return ApiSource(DossierSettings(**{**defaults, **values}))


async def test_a_verified_dossier_comes_back_with_its_shipment(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    view = await source(url).lookup(CODE, "4567")
    assert view is not None
    assert (view.status, view.received_on, view.shipment_code) == ("sent_by_post", dt.date(2026, 11, 2),
                                                                   "EI261118012VN")
    assert not view.in_register
    assert fake.calls == [{"json": {"code": CODE, "phone_last4": "4567"}, "auth": "Bearer t0ken"}]


async def test_not_found_and_wrong_digits_are_both_none(api: tuple[FakeApi, str]) -> None:
    _, url = api
    assert await source(url).lookup(CODE, "0000") is None
    assert await source(url).lookup("000.00.04.H51-200221-0009", "4567") is None


async def test_server_errors_are_retried_with_backoff(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.script = ["503", "502", "ok"]
    assert await source(url).lookup(CODE, "4567") is not None
    assert len(fake.calls) == 3


async def test_a_source_that_stays_down_is_unavailable_not_wrong(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.script = ["503"]
    with pytest.raises(SourceUnavailable):
        await source(url).lookup(CODE, "4567")
    assert len(fake.calls) == 3  # one try and two retries


async def test_a_refusal_is_not_retried(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.script = ["401"]
    with pytest.raises(SourceUnavailable, match="HTTP 401"):
        await source(url).lookup(CODE, "4567")
    assert len(fake.calls) == 1


async def test_a_slow_source_times_out(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.script = ["slow"]
    with pytest.raises(SourceUnavailable, match="Timeout"):
        await source(url, api_retries=1).lookup(CODE, "4567")


async def test_an_answer_outside_the_contract_is_never_shown(api: tuple[FakeApi, str]) -> None:
    fake, url = api
    for broken in ({**RECORD, "status": "almost done"}, {**RECORD, "code": "000.00.04.H51-200221-0002"},
                   {**RECORD, "received_on": "yesterday"}, {"status": "completed"}):
        fake.body = broken
        with pytest.raises(SourceUnavailable, match="bad answer"):
            await source(url).lookup(CODE, "4567")


async def test_nothing_listening_is_unavailable() -> None:
    from tests.servers import free_port

    with pytest.raises(SourceUnavailable):
        await source(f"http://127.0.0.1:{free_port()}", api_retries=0).lookup(CODE, "4567")


async def test_the_circuit_opens_after_repeated_failures_and_closes_after_a_good_trial(
        api: tuple[FakeApi, str]) -> None:
    fake, url = api
    fake.script = ["500"]
    src = source(url, api_retries=0, breaker_failures=2, breaker_reset=0.3)
    for _ in range(2):
        with pytest.raises(SourceUnavailable, match="HTTP 500"):
            await src.lookup(CODE, "4567")
    with pytest.raises(SourceUnavailable, match="circuit open"):
        await src.lookup(CODE, "4567")
    assert len(fake.calls) == 2  # the open circuit spared the API
    await asyncio.sleep(0.35)
    fake.script = ["500", "500", "ok"]  # the third call (the half-open trial) succeeds
    assert await src.lookup(CODE, "4567") is not None
    assert src.breaker.state == "closed"


def test_breaker_states_with_a_fake_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_after=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half-open" and breaker.allow()
    breaker.failure()  # the trial failed: open again, for another period
    assert breaker.state == "open"
    now[0] = 20.0
    breaker.success()
    assert breaker.state == "closed" and breaker.failures == 0


def test_no_url_no_source() -> None:
    with pytest.raises(ValueError):
        ApiSource(DossierSettings(api_url=None))
