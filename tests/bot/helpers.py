"""Helpers for the gateway tests: a gateway wired to the fakes, waiting, rate-limit arithmetic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.app import create_app
from bot.channels.telegram_limits import TelegramLimits
from bot.models import OutboxEntry
from dvcbot.settings import Settings
from tests.fakes import zalo as zalo_fake
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve

TELEGRAM_SECRET = "tg-webhook-secret_1"


def channel_settings(database_url: str, rasa_port: int, telegram_url: str, zalo: FakeZalo, zalo_url: str,
                     **extra: object) -> Settings:
    """Settings for a gateway with both channels pointed at the fakes."""
    values: dict[str, object] = dict(
        database_url=database_url, rasa_port=rasa_port, rasa_token="test-token", actions_port=free_port(),
        rasa_timeout=2.0, webchat_max_chars=500,
        telegram_token=TOKEN, telegram_secret=TELEGRAM_SECRET, telegram_api_base=telegram_url,
        zalo_app_id=zalo_fake.APP_ID, zalo_app_secret=zalo_fake.APP_SECRET,
        zalo_oa_secret_key=zalo_fake.OA_SECRET_KEY, zalo_access_token=zalo.access_token,
        zalo_refresh_token=zalo.refresh_token, zalo_api_base=zalo_url, zalo_oauth_base=zalo_url)
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Channels:
    """A running gateway with Telegram and Zalo, the fakes behind it, and its database."""

    url: str
    rasa: FakeRasa
    telegram: FakeTelegram
    zalo: FakeZalo
    engine: Engine

    async def telegram_update(self, client: httpx.AsyncClient, update: dict[str, object],
                              secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return await client.post(f"{self.url}/webhooks/telegram", json=update, headers=headers)

    async def zalo_event(self, client: httpx.AsyncClient, event: dict[str, object]) -> httpx.Response:
        body, headers = zalo_fake.signed(event)
        return await client.post(f"{self.url}/webhooks/zalo", content=body, headers=headers)

    def statuses(self) -> dict[str, int]:
        """How many outbox rows are in each status."""
        with Session(self.engine) as session:
            rows = session.execute(select(OutboxEntry.status, func.count()).group_by(OutboxEntry.status)).all()
            return {status: int(n) for status, n in rows}

    def count(self, model: type) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


def make_channels(db_url: str, eng: Engine, rasa: tuple[FakeRasa, int], telegram: tuple[FakeTelegram, str],
                  zalo: tuple[FakeZalo, str], limits: TelegramLimits | None = None) -> Iterator[Channels]:
    settings = channel_settings(db_url, rasa[1], telegram[1], zalo[0], zalo[1])
    with serve(create_app(settings, telegram_limits=limits)) as url:
        yield Channels(url, rasa[0], telegram[0], zalo[0], eng)


async def eventually(check: Callable[[], bool], within: float = 15.0, what: str = "condition") -> None:
    """Wait until ``check()`` holds (the gateway works in the background)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


def max_in_window(times: list[float], period: float) -> int:
    """The largest number of ``times`` inside any window of ``period`` seconds."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best
