"""Per-conversation locks: messages of one conversation are handled one at a time, in order.

In one process an asyncio lock per conversation is enough; with several gateway replicas the lock lives
in Redis so that a webhook landing on another replica waits its turn too. The Redis lock is a short lease
(:data:`LEASE_SECONDS`) that its holder renews every third of it while the work goes on: a replica that dies (or
loses Redis for longer than the lease) frees its conversations within seconds, while a live one keeps its lock
through a slow Rasa call. A holder whose lease was taken by someone else is cancelled rather than left to finish
the same work twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import redis.asyncio as redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockNotOwnedError, RedisError

log = logging.getLogger(__name__)
LEASE_SECONDS = 15.0  # how long a dead holder keeps a conversation locked


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
    """Locks shared by every replica through Redis, with a local lock in front to spare round trips.

    Each lock is a lease of ``ttl`` seconds renewed every ``ttl / 3`` seconds while its holder works.
    """

    def __init__(self, client: redis.Redis, ttl: float = LEASE_SECONDS, wait: float = 120.0) -> None:
        self.client = client
        self.ttl = ttl  # a crashed holder frees the lock after this many seconds
        self.renew_every = ttl / 3
        self.wait = wait  # how long a second worker waits its turn before giving up (the sweep retries)
        self.local = LocalLocks()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self.local.hold(key):
            lock = self.client.lock(f"dvcbot:conv:{key}", timeout=self.ttl, blocking_timeout=self.wait,
                                    sleep=0.01)
            if not await lock.acquire():
                raise TimeoutError(f"conversation {key} stayed locked for {self.wait} s")
            holder = asyncio.current_task()
            assert holder is not None
            stop = asyncio.Event()
            renewing = asyncio.create_task(self._renew(lock, key, holder, stop))
            try:
                yield
            finally:
                # Stopped by an event, not by cancelling it: redis-py's asyncio client can swallow a cancellation
                # that lands inside a command (seen with redis 8.1: the renewal then went on for ever, and so did
                # its conversation's lock). A Redis call in flight is waited for, within the socket timeout.
                stop.set()
                await asyncio.wait({renewing}, timeout=self.ttl)
                if not renewing.done():
                    renewing.cancel()
                    log.error("conversation %s: its lock renewal did not stop; releasing anyway", key)
                try:
                    await lock.release()
                except LockNotOwnedError:
                    log.warning("conversation %s: the lock had expired before it was released", key)

    async def _renew(self, lock: Lock, key: str, holder: asyncio.Task[object], stop: asyncio.Event) -> None:
        """Renew ``lock`` every ``renew_every`` s until ``stop`` is set; cancel ``holder`` once the lease is surely
        lost."""
        renewed = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.renew_every)
            if stop.is_set():
                return
            try:
                try:
                    await lock.reacquire()
                except LockNotOwnedError:
                    if stop.is_set():  # released meanwhile by its holder
                        return
                    # expired (this process stalled, or Redis restarted empty): take it again if nobody else has
                    token = lock.local.token
                    if token is None or not await lock.acquire(blocking=False, token=token):
                        log.error("conversation %s: its lock was taken by another worker; stopping this one", key)
                        holder.cancel()
                        return
                renewed = time.monotonic()
            except (RedisError, OSError) as exc:
                if time.monotonic() - renewed < self.ttl:
                    log.warning("conversation %s: could not renew its lock (%s); retrying", key, exc)
                    continue
                # the lease has lapsed for the others: stop rather than risk working on it twice
                log.error("conversation %s: lock not renewed for %.0f s; stopping its work", key, self.ttl)
                holder.cancel()
                return
