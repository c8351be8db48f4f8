"""Telegram's two ways in: the webhook registered by ``dvcbot telegram set-webhook``, and long polling."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from dvcbot.cli import main
from dvcbot.settings import get_settings
from tests.bot.helpers import TELEGRAM_SECRET, channel_settings, eventually
from tests.fakes.rasa import FakeRasa
from tests.fakes.telegram import TOKEN, FakeTelegram, text_update
from tests.fakes.zalo import FakeZalo
from tests.servers import serve


@pytest.fixture
def telegram_env(monkeypatch: pytest.MonkeyPatch, fake_telegram: tuple[FakeTelegram, str]) -> Iterator[FakeTelegram]:
    monkeypatch.setenv("DVCBOT_TELEGRAM_TOKEN", TOKEN)
    monkeypatch.setenv("DVCBOT_TELEGRAM_SECRET", TELEGRAM_SECRET)
    monkeypatch.setenv("DVCBOT_TELEGRAM_API_BASE", fake_telegram[1])
    get_settings.cache_clear()
    yield fake_telegram[0]
    get_settings.cache_clear()


def test_set_webhook_registers_url_and_secret(telegram_env: FakeTelegram, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["telegram", "set-webhook", "https://bot.example.vn/"]) == 0
    assert telegram_env.webhook == {"url": "https://bot.example.vn/webhooks/telegram",
                                    "secret_token": TELEGRAM_SECRET, "allowed_updates": ["message", "callback_query"]}
    assert main(["telegram", "webhook-info"]) == 0
    assert "url: https://bot.example.vn/webhooks/telegram" in capsys.readouterr().out
    assert main(["telegram", "delete-webhook"]) == 0
    assert telegram_env.webhook == {}


def test_set_webhook_needs_the_secret(telegram_env: FakeTelegram, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DVCBOT_TELEGRAM_SECRET")
    get_settings.cache_clear()
    assert main(["telegram", "set-webhook", "https://bot.example.vn"]) == 1
    assert "DVCBOT_TELEGRAM_SECRET" in capsys.readouterr().err
    assert telegram_env.webhook == {}


async def test_long_polling_answers_like_the_webhook(database_url: str, engine: Engine,
                                                     fake_rasa: tuple[FakeRasa, int],
                                                     fake_telegram: tuple[FakeTelegram, str],
                                                     fake_zalo: tuple[FakeZalo, str]) -> None:
    from bot.app import create_app

    telegram, tg_url = fake_telegram
    telegram.webhook = {"url": "https://old.example.vn/webhooks/telegram"}
    settings = channel_settings(database_url, fake_rasa[1], tg_url, fake_zalo[0], fake_zalo[1],
                                telegram_polling=True)
    with serve(create_app(settings)):
        telegram.push_update(text_update(1, 4242, "xin chào"))
        telegram.push_update(text_update(2, 4242, "cảm ơn"))
        await eventually(lambda: len(telegram.sent(4242)) == 2, what="answers to polled updates")
        await asyncio.sleep(0.5)
    assert telegram.texts(4242) == ["echo: xin chào", "echo: cảm ơn"]
    assert telegram.webhook == {}  # polling removed the webhook first
