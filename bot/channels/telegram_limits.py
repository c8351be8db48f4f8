"""Telegram's flood limits as a python-telegram-bot rate limiter (plugged in with ``ApplicationBuilder.rate_limiter``).

About 30 messages per second for the whole bot: at most 30 calls in any second, and never two within 1/60 s (a
burst sent at once arrives bunched up and looks like more than 30 in a second); about one per second in one chat
(short bursts are tolerated, so three in any three seconds: a reply of two or three parts arrives at once), and 20
per minute in a group. Gateway replicas share the bot's budget: each gets ``30 / replicas`` per second
(``DVCBOT_GATEWAY_REPLICAS``).

The bot's limit used to be one call per 1/30 s, stamped when the call went out: every wake-up that came late (a
busy event loop) pushed all later calls back, so under load the bot sent fewer than 30 a second and a queue grew
behind the limiter (make bench: 27 messages/s, 1.8 s from the stored answer to the platform).
Unlike PTB's ``AIORateLimiter`` this one never retries by itself: a ``RetryAfter`` goes back to the outbox,
which stores the delay with the row, so that a wait survives a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.ext import BaseRateLimiter

from bot.metrics import PLATFORM_LIMIT_WAIT
from bot.ratelimit import Window, Windows

JSONDict = dict[str, Any]
BOT_PER_SECOND = 30  # Telegram's ceiling for one bot


def for_replicas(replicas: int) -> TelegramLimits:
    """The limits of one of ``replicas`` gateways sending for the same bot."""
    return TelegramLimits(per_bot=(max(1, BOT_PER_SECOND // max(1, replicas)), 1.0))


class TelegramLimits(BaseRateLimiter[None]):
    """Per-bot, per-chat and per-group sliding windows in front of every call that names a chat."""

    def __init__(self, per_bot: tuple[int, float] = (BOT_PER_SECOND, 1.0), per_chat: tuple[int, float] = (3, 3.0),
                 per_group: tuple[int, float] = (20, 60.0), spacing: float = 1 / 60) -> None:
        self.bot = Window(*per_bot)
        self.spacing = Window(1, spacing)
        self.chats = Windows(*per_chat)
        self.groups = Windows(*per_group)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | JSONDict | list[JSONDict]:
        """Wait for room in the chat's, the group's and the bot's windows, then make the call."""
        chat_id = data.get("chat_id")
        if chat_id is not None:
            started = time.perf_counter()
            key = str(chat_id)
            await self.chats.acquire(key)
            if key.startswith(("-", "@")):  # groups, supergroups and channels
                await self.groups.acquire(key)
            await self.spacing.acquire()
            await self.bot.acquire()  # last: its stamp is when the call goes out
            PLATFORM_LIMIT_WAIT.labels("telegram").observe(time.perf_counter() - started)
        return await callback(*args, **kwargs)
