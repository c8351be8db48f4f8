"""Gateway fixtures: fake Rasa, fake Telegram and Zalo servers on loopback, and a gateway wired to them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.bot.helpers import Channels, make_channels
from tests.db import database_url, engine  # noqa: F401  (fixtures)
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo import FakeZalo
from tests.servers import free_port, serve


@pytest.fixture
def fake_rasa() -> Iterator[tuple[FakeRasa, int]]:
    fake = FakeRasa()
    port = free_port()
    with serve(fake.app(), port):
        yield fake, port


@pytest.fixture
def fake_telegram() -> Iterator[tuple[FakeTelegram, str]]:
    fake = FakeTelegram()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
def fake_zalo() -> Iterator[tuple[FakeZalo, str]]:
    fake = FakeZalo()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
def channels(database_url: str, engine: Engine, fake_rasa: tuple[FakeRasa, int],  # noqa: F811
             fake_telegram: tuple[FakeTelegram, str], fake_zalo: tuple[FakeZalo, str]) -> Iterator[Channels]:
    """The gateway with Telegram's real flood limits."""
    yield from make_channels(database_url, engine, fake_rasa, fake_telegram, fake_zalo)
