"""Per-conversation locks: messages of one conversation are handled one at a time, in order.

In one process an asyncio lock per conversation is enough; with several gateway replicas the lock lives
in Redis so that a webhook landing on another replica waits its turn too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import redis.asyncio as redis


class ConversationLocks(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[None]: ...


class LocalLocks:
    """Locks for a single gateway process."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


class RedisLocks:
    """Locks shared by every replica through Redis, with a local lock in front to spare round trips."""

    def __init__(self, client: redis.Redis, ttl: float = 120.0, wait: float = 120.0) -> None:
        self.client = client
        self.ttl = ttl  # a crashed holder frees the lock after this many seconds
        self.wait = wait
        self.local = LocalLocks()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self.local.hold(key):
            lock = self.client.lock(f"dvcbot:conv:{key}", timeout=self.ttl, blocking_timeout=self.wait,
                                    sleep=0.01)
            if not await lock.acquire():
                raise TimeoutError(f"conversation {key} stayed locked for {self.wait} s")
            try:
                yield
            finally:
                await lock.release()
