"""``dvcbot telegram …``: register, remove and show the webhook of the configured bot."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

from bot.channels.telegram import ALLOWED_UPDATES, WEBHOOK_PATH
from dvcbot.settings import Settings, get_settings


def _bot(settings: Settings) -> Bot:
    assert settings.telegram_token is not None
    base = settings.telegram_api_base.rstrip("/")
    return Bot(settings.telegram_token.get_secret_value(), base_url=f"{base}/bot",
               base_file_url=f"{base}/file/bot")


async def set_webhook(settings: Settings, public_url: str) -> str:
    """Point the bot's webhook at ``<public_url>/webhooks/telegram`` with the configured secret."""
    assert settings.telegram_secret is not None
    url = public_url.rstrip("/") + WEBHOOK_PATH
    async with _bot(settings) as bot:
        await bot.set_webhook(url, secret_token=settings.telegram_secret.get_secret_value(),
                              allowed_updates=ALLOWED_UPDATES)
    return url


async def delete_webhook(settings: Settings) -> None:
    async with _bot(settings) as bot:
        await bot.delete_webhook()


async def webhook_info(settings: Settings) -> dict[str, Any]:
    async with _bot(settings) as bot:
        info = await bot.get_webhook_info()
    return {"url": info.url, "pending_update_count": info.pending_update_count,
            "last_error_message": info.last_error_message}


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.telegram_token is None:
        print("DVCBOT_TELEGRAM_TOKEN is not set.", file=sys.stderr)
        return 1
    try:
        if args.telegram_command == "set-webhook":
            if settings.telegram_secret is None:
                print("DVCBOT_TELEGRAM_SECRET is not set: the webhook must carry a secret.", file=sys.stderr)
                return 1
            print(f"Webhook set: {asyncio.run(set_webhook(settings, args.public_url))}")
        elif args.telegram_command == "delete-webhook":
            asyncio.run(delete_webhook(settings))
            print("Webhook deleted.")
        else:
            for key, value in asyncio.run(webhook_info(settings)).items():
                print(f"{key}: {value}")
    except TelegramError as exc:
        print(f"Telegram refused: {exc}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub: Any) -> None:
    """Add ``telegram set-webhook | delete-webhook | webhook-info`` to the ``dvcbot`` command."""
    tg = sub.add_parser("telegram", help="the Telegram channel").add_subparsers(dest="telegram_command",
                                                                              required=True)
    setter = tg.add_parser("set-webhook", help="register <public-url>/webhooks/telegram with the secret")
    setter.add_argument("public_url", help="the gateway's public HTTPS address, e.g. https://bot.example.vn")
    setter.set_defaults(func=_run)
    tg.add_parser("delete-webhook", help="remove the webhook (before long polling)").set_defaults(func=_run)
    tg.add_parser("webhook-info", help="show what Telegram has registered").set_defaults(func=_run)
