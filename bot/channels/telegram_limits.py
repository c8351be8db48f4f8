"""Telegram's flood limits as a python-telegram-bot rate limiter (plugged in with ``ApplicationBuilder.rate_limiter``).

About 30 messages per second for the whole bot, spaced evenly (one per 1/30 s: a burst sent at once arrives
bunched up with the next one and looks like more than 30 in a second), about one per second in one chat (short
bursts are tolerated, so three in any three seconds: a reply of two or three parts arrives at once), and 20 per
minute in a group.
Unlike PTB's ``AIORateLimiter`` this one never retries by itself: a ``RetryAfter`` goes back to the outbox,
which stores the delay with the row, so that a wait survives a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram.ext import BaseRateLimiter

from bot.ratelimit import Window, Windows

JSONDict = dict[str, Any]


class TelegramLimits(BaseRateLimiter[None]):
    """Per-bot, per-chat and per-group sliding windows in front of every call that names a chat."""

    def __init__(self, per_bot: tuple[int, float] = (1, 1 / 30), per_chat: tuple[int, float] = (3, 3.0),
                 per_group: tuple[int, float] = (20, 60.0)) -> None:
        self.bot = Window(*per_bot)
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
            key = str(chat_id)
            await self.chats.acquire(key)
            if key.startswith(("-", "@")):  # groups, supergroups and channels
                await self.groups.acquire(key)
            await self.bot.acquire()
        return await callback(*args, **kwargs)
